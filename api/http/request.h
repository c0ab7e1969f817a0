// One HTTP request as the application sees it, and the answer it gives. Free of Beast types so
// the route handlers compile without Beast.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace hsmb::api {

// Who is calling: from SO_PEERCRED on the Unix socket; absent on TCP.
struct peer_identity {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
};

struct request {
  std::string_view method;  // "GET", "POST", "LIST", "DELETE", "PUT", "HEAD", ...
  std::string_view target;  // path and query, as sent
  std::string_view body;
  std::string_view vault_token;  // X-Vault-Token, empty when absent
  std::optional<peer_identity> peer;
  // True once the client has gone away (a long batch stops); absent: never asked.
  std::function<bool()> client_gone;
};

struct response {
  unsigned status = 200;
  std::string body;  // JSON unless content_type says otherwise
  std::string_view content_type = "application/json";
};

}  // namespace hsmb::api
