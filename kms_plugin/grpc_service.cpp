#include "kms_plugin/grpc_service.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace hsmb::kms {
namespace {

using namespace std::chrono_literals;

// Without a deadline from the caller, a request may take this long (the broker fails over
// within its own 5 s request timeout).
constexpr auto default_budget = 10s;
constexpr auto max_budget = 60s;

// The caller's deadline on the steady clock, bounded.
clock::time_point deadline_of(const ::grpc::ServerContext* ctx) {
  auto left = ctx->deadline() - std::chrono::system_clock::now();
  if (ctx->deadline() == std::chrono::system_clock::time_point::max()) left = default_budget;
  return clock::now() + std::clamp<clock::duration>(std::chrono::duration_cast<clock::duration>(left), clock::duration::zero(), max_budget);
}

::grpc::Status to_status(const failure& f, const std::string& uid) {
  ::grpc::StatusCode code = ::grpc::StatusCode::INTERNAL;
  switch (f.kind) {
    case failure_kind::invalid: code = ::grpc::StatusCode::INVALID_ARGUMENT; break;
    case failure_kind::not_found: code = ::grpc::StatusCode::NOT_FOUND; break;
    case failure_kind::denied: code = ::grpc::StatusCode::PERMISSION_DENIED; break;
    case failure_kind::unavailable: code = ::grpc::StatusCode::UNAVAILABLE; break;
    case failure_kind::internal: code = ::grpc::StatusCode::INTERNAL; break;
  }
  spdlog::warn("request {}: {}", uid.substr(0, 64), f.message);
  return {code, f.message};
}

byte_view bytes_of(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

}  // namespace

::grpc::Status grpc_service::Status(::grpc::ServerContext*, const v2::StatusRequest*, v2::StatusResponse* response) {
  counted serving(in_flight_);
  auto report = core_.status();
  response->set_version("v2");
  response->set_healthz(report.healthz);
  response->set_key_id(report.key_id);
  return ::grpc::Status::OK;
}

::grpc::Status grpc_service::Encrypt(::grpc::ServerContext* ctx, const v2::EncryptRequest* request, v2::EncryptResponse* response) {
  counted serving(in_flight_);
  auto r = core_.encrypt(bytes_of(request->plaintext()), deadline_of(ctx));
  if (!r) return to_status(r.error(), request->uid());
  response->set_ciphertext(std::move(r->ciphertext));
  response->set_key_id(std::move(r->key_id));
  return ::grpc::Status::OK;
}

::grpc::Status grpc_service::Decrypt(::grpc::ServerContext* ctx, const v2::DecryptRequest* request, v2::DecryptResponse* response) {
  counted serving(in_flight_);
  if (!request->annotations().empty())  // this plugin never returns any: these are not its ciphertexts
    return to_status({failure_kind::invalid, "unexpected annotations: this plugin's ciphertexts have none"}, request->uid());
  auto r = core_.decrypt(request->ciphertext(), request->key_id(), deadline_of(ctx));
  if (!r) return to_status(r.error(), request->uid());
  response->set_plaintext(r->data(), r->size());
  return ::grpc::Status::OK;
}

}  // namespace hsmb::kms
