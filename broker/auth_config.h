// The auth: and policies: sections (README "Callers and policies"): who a caller is (a token's
// SHA-256, a Unix peer rule, a client certificate) and what each named policy allows. Plain data;
// api/auth/ turns it into identities and ACLs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hsmb {

class node_at;

// Vault's capabilities as bits; deny overrides every other on the same path.
namespace acl_bits {
inline constexpr std::uint8_t create = 1, read = 2, update = 4, del = 8, list = 16, sudo = 32, deny = 64;
}

struct policy_rule {
  std::string path;  // "transit/encrypt/billing-*": API path without /v1/; '*' trailing glob, '+' a segment
  std::uint8_t capabilities = 0;
};

// A token bucket per caller: `per_second` requests on average, up to `burst` at once.
struct rate_limit {
  double per_second = 0;
  std::uint32_t burst = 1;
};

// What every binding has: the policies it grants and an optional rate limit.
struct binding {
  std::vector<std::string> policies;
  std::optional<rate_limit> rate;
};

struct token_binding : binding {
  std::string name;
  std::string sha256;  // lowercase hex of the token's SHA-256
};

// Every condition given must hold; user and group are resolved to ids when the config loads.
struct unix_binding : binding {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::string unit;   // "billing.service"
  std::string label;  // "uid-1001", "user-alice", "unit-billing.service": for display names
};

struct cert_binding : binding {
  std::string uri_san;     // matches any of the certificate's URI SANs
  std::string subject_cn;  // or its subject's CN
};

struct auth_config {
  std::vector<token_binding> tokens;
  std::vector<unix_binding> unix_peers;  // auth.unix (the name `unix` is a macro in GNU C++)
  std::vector<cert_binding> certs;
  bool require_request_header = false;
  std::map<std::string, std::vector<policy_rule>> policies;
};

// Reads root.auth and root.policies; nullopt without an auth section. Throws config_error
// naming the key path ("auth.tokens[0].sha256: ...").
std::optional<auth_config> load_auth_sections(const node_at& root);

}  // namespace hsmb
