// v2.KeyManagementService over plugin_core: request deadlines in, failure kinds out as gRPC
// status codes. Only this file and main.cpp see gRPC.
#pragma once

#include "kms_plugin/plugin_core.h"
#include "kms_v2/api.grpc.pb.h"

namespace hsmb::kms {

class grpc_service final : public v2::KeyManagementService::Service {
 public:
  explicit grpc_service(plugin_core& core) : core_(core) {}

  ::grpc::Status Status(::grpc::ServerContext* ctx, const v2::StatusRequest* request, v2::StatusResponse* response) override;
  ::grpc::Status Encrypt(::grpc::ServerContext* ctx, const v2::EncryptRequest* request, v2::EncryptResponse* response) override;
  ::grpc::Status Decrypt(::grpc::ServerContext* ctx, const v2::DecryptRequest* request, v2::DecryptResponse* response) override;

 private:
  plugin_core& core_;
};

}  // namespace hsmb::kms
