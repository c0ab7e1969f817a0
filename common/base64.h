// Strict base64 (RFC 4648): standard alphabet with padding, and base64url without padding (JWS).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"

namespace hsmb {

std::string base64_encode(byte_view in);
std::string base64url_encode(byte_view in);  // no padding
// Rejects bad characters, bad padding and non-zero trailing bits. Output may hold secrets.
std::optional<secure_bytes> base64_decode(std::string_view in);
std::optional<secure_bytes> base64url_decode(std::string_view in);
std::string hex_encode(byte_view in);
void hex_encode_to(char* out, byte_view in);  // the same into out[0, 2 × in.size()): no allocation

}  // namespace hsmb
