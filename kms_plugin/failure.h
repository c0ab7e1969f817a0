// Why a plugin operation failed, in the classes the gRPC answer needs (caller error, refused,
// broker or HSMs unavailable), with a message for the apiserver's log.
#pragma once

#include <expected>
#include <string>

namespace hsmb::kms {

enum class failure_kind {
  invalid,      // the request is wrong (unknown key_id, foreign ciphertext, failed tag check)
  not_found,    // the key does not exist on the broker
  denied,       // the broker refused the plugin's token
  unavailable,  // the broker or every HSM cannot serve now: the apiserver retries
  internal,     // an answer the plugin does not understand
};

struct failure {
  failure_kind kind;
  std::string message;
};

template <class T>
using result = std::expected<T, failure>;

}  // namespace hsmb::kms
