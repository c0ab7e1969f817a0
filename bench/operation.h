// The operations hsm-bench measures, by their command-line names, with the key each one uses by
// default (the same names in both modes, so compare.sh creates them once) and its input size.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"

namespace hsmb::bench {

enum class operation {
  sign_ecdsa_p256,
  sign_rsa_2048,
  sign_ed25519,
  encrypt_32,
  encrypt_4k,
  decrypt_32,
  decrypt_4k,
  hmac,
  random,
};

std::optional<operation> parse_operation(std::string_view name);
std::string_view to_string(operation op);
// "sign-ecdsa-p256, sign-rsa-2048, ...": for messages and --help.
std::string operation_names();

// Broker key name used unless --key / --label says otherwise; empty for random.
std::string_view default_key(operation op);
// Bytes signed, HMACed or encrypted per call (for decrypt: the plaintext under the ciphertext).
std::size_t input_size(operation op);

bool is_sign(operation op);
bool is_encrypt(operation op);
bool is_decrypt(operation op);

// `n` bytes of non-secret random filler for request inputs.
bytes random_input(std::size_t n);

}  // namespace hsmb::bench
