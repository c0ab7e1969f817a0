#include "broker/keys/versioned_value.h"

#include <charconv>

#include "common/base64.h"

namespace hsmb {

std::string format_versioned(std::uint32_t version, byte_view value, value_encoding enc) {
  return "vault:v" + std::to_string(version) + ":" +
         (enc == value_encoding::base64 ? base64_encode(value) : base64url_encode(value));
}

std::optional<versioned_value> parse_versioned(std::string_view text, value_encoding enc) {
  constexpr std::string_view prefix = "vault:v";
  if (!text.starts_with(prefix)) return std::nullopt;
  text.remove_prefix(prefix.size());
  auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 10) return std::nullopt;
  std::uint32_t version = 0;
  auto digits = text.substr(0, colon);
  if (digits[0] == '0') return std::nullopt;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
  if (ec != std::errc{} || end != digits.data() + digits.size() || version == 0 || version > 0x7fffffffu)
    return std::nullopt;
  auto decoded = enc == value_encoding::base64 ? base64_decode(text.substr(colon + 1)) : base64url_decode(text.substr(colon + 1));
  if (!decoded) return std::nullopt;
  return versioned_value{version, std::move(*decoded)};
}

}  // namespace hsmb
