// Who a request's caller is (design "Callers"): a presented token, else a TLS client
// certificate, else the first matching Unix peer rule. Each binding's ACL is built once here.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/auth/caller.h"
#include "api/auth/policy.h"
#include "api/http/request.h"
#include "broker/auth_config.h"

namespace hsmb::api {

// A request's caller and what bound it.
struct identified {
  caller who;
  const acl* rights = nullptr;          // null for nobody
  const binding* bound = nullptr;       // the config entry (its rate limit); null for nobody
};

class authenticator {
 public:
  explicit authenticator(auth_config cfg);
  // nullopt: a token was presented and is unknown (403: never a fallback to the peer's identity).
  // `want_unit`: read the peer's systemd unit even when no rule needs it (lookup-self shows it).
  std::optional<identified> identify(const request& req, bool want_unit = false) const;
  bool require_request_header() const { return cfg_.require_request_header; }

 private:
  std::optional<identified> by_token(std::string_view token) const;
  identified by_cert(const tls_peer& cert) const;
  identified by_peer(const peer_identity& peer, bool want_unit) const;

  auth_config cfg_;
  std::vector<acl> token_acls_, unix_acls_, cert_acls_;  // parallel to cfg_'s lists
  bool rules_need_unit_ = false;
};

// The token a request presents: X-Vault-Token, else "Authorization: Bearer T"; empty when none.
std::string_view presented_token(const request& req);
// Lowercase hex SHA-256, as auth.tokens[].sha256 holds it.
std::string sha256_hex(std::string_view text);

}  // namespace hsmb::api
