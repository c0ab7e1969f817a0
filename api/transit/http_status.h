// The one place a broker error becomes an HTTP status (Vault's: 400, 403, 404, 429, 500, 503).
#pragma once

#include "broker/error.h"

namespace hsmb::api {

constexpr unsigned http_status(error_kind k) {
  switch (k) {
    case error_kind::invalid_input: return 400;
    case error_kind::denied: return 403;
    case error_kind::not_found: return 404;
    case error_kind::overloaded: return 429;  // Vault's answer to a rate limit: clients back off
    case error_kind::unavailable: return 503;
    case error_kind::internal: return 500;
  }
  return 500;
}

}  // namespace hsmb::api
