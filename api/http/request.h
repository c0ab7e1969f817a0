// One HTTP request as the application sees it, and the answer it gives. Free of Beast types so
// the route handlers compile without Beast.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::json {
class object;
}

namespace hsmb::api {

// Who is calling: from SO_PEERCRED on the Unix socket; absent on TCP.
struct peer_identity {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
};

// The client certificate of a TLS connection, verified against listen.http.tls.client_ca.
struct tls_peer {
  std::string subject;                // RFC 2253, "CN=billing,O=Example"
  std::string subject_cn;
  std::vector<std::string> uri_sans;  // "spiffe://example.org/ns/pay/sa/billing"
};

struct request {
  std::string_view method;  // "GET", "POST", "LIST", "DELETE", "PUT", "HEAD", ...
  std::string_view target;  // path and query, as sent
  std::string_view body;
  std::string_view vault_token;    // X-Vault-Token, empty when absent
  std::string_view authorization;  // Authorization (e.g. "Bearer <token>"), empty when absent
  std::string_view vault_request;  // X-Vault-Request, empty when absent
  std::optional<peer_identity> peer;  // Unix socket only
  const tls_peer* tls = nullptr;      // TCP with a verified client certificate only
  std::string_view remote_address;    // "127.0.0.1:51234", "unix"
  // True once the client has gone away (a long batch stops); absent: never asked.
  std::function<bool()> client_gone;
};

struct response {
  unsigned status = 200;
  std::string body;  // JSON unless content_type says otherwise
  std::string_view content_type = "application/json";
  unsigned retry_after = 0;  // seconds; when set, a Retry-After header (429)
  // The body's "data" as the handler built it, for the audit line, which would otherwise parse
  // `body` back; null for bodies built otherwise (errors, metrics).
  std::shared_ptr<const boost::json::object> data;
};

}  // namespace hsmb::api
