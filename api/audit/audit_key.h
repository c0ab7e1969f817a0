// The audit key: 32 bytes derived in an HSM at start-up (HMAC under the replicated key
// `hsmb-audit`), kept in wiping memory, never on disk. Every secret in the audit trail is written
// as "hmac-sha256:<hex>" under it, as Vault's audit devices do with their salt.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "api/audit/sha256.h"
#include "common/bytes.h"

namespace hsmb::api::audit {

// The Transit key the audit key is derived from, and what is HMAC'd under its version 1.
inline constexpr std::string_view key_name = "hsmb-audit";
inline constexpr std::string_view derivation_input = "hsm-broker audit key v1";
// What a secret is written as while no member has served the key yet (fail_closed: false only).
inline constexpr std::string_view unavailable_hash = "hmac-sha256:unavailable";

class audit_key {
 public:
  void set(const secure_bytes& key) { mac_ = std::make_unique<hmac_sha256>(key); }
  bool ready() const { return mac_ != nullptr; }
  // "hmac-sha256:<64 hex>" of `value`; unavailable_hash before set().
  std::string hash(std::string_view value) const;
  void append_hash(std::string& out, std::string_view value) const;  // the same, appended to out

 private:
  std::unique_ptr<hmac_sha256> mac_;  // holds the key's pad states only
};

}  // namespace hsmb::api::audit
