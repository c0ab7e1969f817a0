// The Vault text form of a versioned binary value: "vault:v<N>:<base64>" (ciphertexts,
// signatures, HMACs). JWS-marshaled signatures use base64url without padding.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"

namespace hsmb {

struct versioned_value {
  std::uint32_t version = 0;
  secure_bytes value;
};

enum class value_encoding { base64, base64url };

std::string format_versioned(std::uint32_t version, byte_view value, value_encoding enc = value_encoding::base64);
// nullopt when the prefix, the version (1..2^31) or the encoding is wrong.
std::optional<versioned_value> parse_versioned(std::string_view text, value_encoding enc = value_encoding::base64);

}  // namespace hsmb
