// Load on the broker's HTTP API (Vault Transit routes) through the synchronous client library:
// one kept-alive connection per load thread, one request per call, non-200 is a failed call.
#pragma once

#include <expected>
#include <string>

#include "api/client/broker_client.h"
#include "bench/closed_loop.h"
#include "bench/operation.h"

namespace hsmb::bench {

struct broker_target_options {
  client::endpoint endpoint;
  operation op = operation::sign_ecdsa_p256;
  std::string key;  // broker key name
};

class broker_target {
 public:
  // Builds the request for the operation; for decrypt, encrypts once to have a ciphertext.
  // The error names what failed (unreachable broker, unknown key, ...).
  static std::expected<broker_target, std::string> prepare(const broker_target_options& o);

  // A call for one load thread, on a connection of its own.
  call_fn make_call() const;

 private:
  client::endpoint endpoint_;
  std::string path_, body_;
};

}  // namespace hsmb::bench
