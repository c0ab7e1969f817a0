// A key's metadata (type, versions, policy flags) as stored in a data object on every HSM that
// holds the key: the HSMs are the only store, the broker keeps caches.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "hsm_backends/key_types.h"

namespace hsmb {

struct key_metadata {
  key_type type = key_type::aes256_gcm96;
  std::uint32_t latest_version = 1;
  std::uint32_t min_decryption_version = 1;
  std::uint32_t min_encryption_version = 0;  // 0: latest
  bool deletion_allowed = false;
  // Vault's auto_rotate_period in seconds (0: off): the fleet rotates the key once the latest
  // version is this old. Kept here, with the versions' creation times, so it survives restarts.
  std::int64_t auto_rotate_period = 0;
  std::map<std::uint32_t, std::int64_t> created;  // version -> unix seconds
  // version -> its certificate chain (PEM, leaf first), as set-certificate stored it
  std::map<std::uint32_t, std::string> certificate_chains;
  // version -> fingerprint (hex) of the copy made at creation: every other copy must match it
  std::map<std::uint32_t, std::string> fingerprints;
  // Bumped by every change (create, rotate, config, delete): the highest revision among the
  // members is the truth, and a member holding an older one is brought up to date.
  std::uint64_t revision = 1;
  // A tombstone: the key was deleted. Kept so a member that was down during the delete does not
  // bring the key back when it returns.
  bool deleted = false;
};

bytes encode_metadata(const key_metadata& m);
// Whether the key's auto_rotate_period has passed since its latest version was made, at `now`.
bool rotation_due(const key_metadata& m, std::int64_t now);
std::optional<key_metadata> decode_metadata(byte_view data);

// Object label of one key version on the HSM, and the prefix of all of a key's objects.
std::string key_object_label(std::string_view name, std::uint32_t version);
std::string key_object_prefix(std::string_view name);
// Every Vault key can HMAC: keys of other types get a companion HMAC secret per version.
std::string hmac_object_label(std::string_view name, std::uint32_t version, key_type type);
// Names of data objects that are not keys (create locks) start with this; never a valid key name.
inline constexpr std::string_view reserved_record_prefix = "~";
// Key names the API accepts: 1..128 of [A-Za-z0-9_.-], not starting with '.'.
bool valid_key_name(std::string_view name);

}  // namespace hsmb
