// Who is asking: one value per request, from a token, a TLS client certificate or the Unix
// peer's credentials (design "Callers"). What it may do is its policies' business.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace hsmb::api {

enum class caller_kind {
  anyone,     // no auth section: everyone who can connect may do everything (as before [10])
  nobody,     // auth configured, and the caller matched no rule: 403 but on health/seal-status
  token,
  unix_peer,
  cert,
};

struct caller {
  caller_kind kind = caller_kind::nobody;
  std::string display_name;           // "token-billing-app", "unix-uid-1001", "cert-billing"
  std::vector<std::string> policies;  // names in the configuration's policies:
  // Metadata for lookup-self and the audit trail (never the token).
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<pid_t> pid;
  std::string unit;          // the Unix peer's systemd unit, when it runs in one
  std::string cert_subject;  // the client certificate's subject
};

}  // namespace hsmb::api
