// v2.KeyManagementService over plugin_core: request deadlines in, failure kinds out as gRPC
// status codes. Only this file and main.cpp see gRPC.
#pragma once

#include <atomic>

#include "kms_plugin/plugin_core.h"
#include "kms_v2/api.grpc.pb.h"

namespace hsmb::kms {

class grpc_service final : public v2::KeyManagementService::Service {
 public:
  explicit grpc_service(plugin_core& core) : core_(core) {}

  ::grpc::Status Status(::grpc::ServerContext* ctx, const v2::StatusRequest* request, v2::StatusResponse* response) override;
  ::grpc::Status Encrypt(::grpc::ServerContext* ctx, const v2::EncryptRequest* request, v2::EncryptResponse* response) override;
  ::grpc::Status Decrypt(::grpc::ServerContext* ctx, const v2::DecryptRequest* request, v2::DecryptResponse* response) override;

  // Requests being served now: a stop waits for them (gRPC's Shutdown would also wait out its
  // whole deadline for the apiserver's idle connection).
  int in_flight() const { return in_flight_.load(); }

 private:
  // Counts one request for as long as it lives.
  struct counted {
    std::atomic<int>& n;
    explicit counted(std::atomic<int>& n) : n(n) { ++n; }
    ~counted() { --n; }
  };
  plugin_core& core_;
  std::atomic<int> in_flight_{0};
};

}  // namespace hsmb::kms
