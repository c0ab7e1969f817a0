// The in-process PKCS#11 baseline: the project's own backend (a pool of logged-in sessions,
// cached object handles) called straight from the load threads: no broker, no worker process,
// no HTTP. The module's environment (SOFTHSM2_CONF, P11_KIT_SERVER_ADDRESS) is inherited.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bench/closed_loop.h"
#include "bench/operation.h"
#include "common/bytes.h"
#include "hsm_backends/backend.h"

namespace hsmb::bench {

struct pkcs11_target_options {
  std::string module;       // PKCS#11 library path
  std::string token;        // token label
  std::string pin_env;      // environment variable that holds the user PIN
  std::string label;        // object label (CKA_LABEL); empty: the default key's hsmb/NAME/v1
  operation op = operation::sign_ecdsa_p256;
  std::uint32_t sessions = 1;  // at least the largest thread count
};

class pkcs11_target {
 public:
  // Opens the token and logs in; for decrypt, encrypts once to have a ciphertext.
  static std::expected<std::unique_ptr<pkcs11_target>, std::string> open(const pkcs11_target_options& o);

  // The backend is thread-safe: every load thread gets the same call.
  call_fn make_call();

 private:
  std::optional<std::string> call_once();
  std::expected<void, std::string> prepare_input();

  std::unique_ptr<hsm_backend> backend_;
  operation op_ = operation::sign_ecdsa_p256;
  std::string label_;
  bytes input_;  // digest, message or plaintext; for decrypt the sealed ciphertext
};

}  // namespace hsmb::bench
