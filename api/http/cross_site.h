// Requests from browser pages on the same host: a page may POST to 127.0.0.1 (CSRF), and a page
// whose name resolves to 127.0.0.1 may read the answers (DNS rebinding). Browsers say who they are
// in Origin, and a rebinding page cannot change the Host its name puts there; Vault clients and
// curl send neither an Origin nor a foreign Host, so they are unaffected.
#pragma once

#include <optional>
#include <string_view>

#include "api/http/request_reader.h"

namespace hsmb::api {

// 403 for an Origin not in limits.allowed_origins; on TCP (`listener_host` "127.0.0.1:8200"), 403
// for a Host that is neither that address, a localhost form or an IP literal with its port, nor
// in limits.allowed_hosts, and 400 for an HTTP/1.1 request without Host. nullopt: go on.
std::optional<response> refuse_cross_site(const http_request& m, bool tcp, std::string_view listener_host,
                                          const server_limits& limits);

}  // namespace hsmb::api
