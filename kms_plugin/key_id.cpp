#include "kms_plugin/key_id.h"

#include <openssl/sha.h>

#include <charconv>

#include "common/base64.h"

namespace hsmb::kms {

std::string make_key_id(std::string_view key_name, std::uint32_t version, std::int64_t created) {
  std::string input = "hsm-broker:";
  input.append(key_name).append(":v").append(std::to_string(version)).append(":").append(std::to_string(created));
  std::uint8_t digest[SHA256_DIGEST_LENGTH];
  ::SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return hex_encode(byte_view(digest, 16));
}

std::optional<std::uint32_t> ciphertext_version(std::string_view ciphertext) {
  constexpr std::string_view prefix = "vault:v";
  if (!ciphertext.starts_with(prefix)) return std::nullopt;
  auto rest = ciphertext.substr(prefix.size());
  std::uint32_t v = 0;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), v);
  if (ec != std::errc{} || end == rest.data() || end == rest.data() + rest.size() || *end != ':' || v == 0)
    return std::nullopt;
  return v;
}

}  // namespace hsmb::kms
