// The key_id the apiserver stores beside each encrypted DEK: one per version of the Transit key,
// stable across plugin and broker restarts and HSM failover, new on rotation, and no secret.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hsmb::kms {

// First 32 hex digits of SHA-256("hsm-broker:" NAME ":v" VERSION ":" CREATED). The version's
// creation time (kept with the key's metadata on every HSM) makes a key deleted and made again
// under the same name get new ids.
std::string make_key_id(std::string_view key_name, std::uint32_t version, std::int64_t created);

// The version N of a Transit ciphertext "vault:vN:...", or nullopt for anything else.
std::optional<std::uint32_t> ciphertext_version(std::string_view ciphertext);

}  // namespace hsmb::kms
