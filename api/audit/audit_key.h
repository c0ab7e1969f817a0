// The audit key: 32 bytes derived in an HSM at start-up (HMAC under the replicated key
// `hsmb-audit`), kept in wiping memory, never on disk. Every secret in the audit trail is written
// as "hmac-sha256:<hex>" under it, as Vault's audit devices do with their salt.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"

namespace hsmb::api::audit {

// The Transit key the audit key is derived from, and what is HMAC'd under its version 1.
inline constexpr std::string_view key_name = "hsmb-audit";
inline constexpr std::string_view derivation_input = "hsm-broker audit key v1";
// What a secret is written as while no member has served the key yet (fail_closed: false only).
inline constexpr std::string_view unavailable_hash = "hmac-sha256:unavailable";

class audit_key {
 public:
  void set(secure_bytes key) { key_ = std::move(key); }
  bool ready() const { return key_.has_value(); }
  // "hmac-sha256:<64 hex>" of `value`; unavailable_hash before set().
  std::string hash(std::string_view value) const;

 private:
  std::optional<secure_bytes> key_;
};

}  // namespace hsmb::api::audit
