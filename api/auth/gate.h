// Enforcement for routes::handle: the X-Vault-Request guard before matching, then per route who
// calls and whether its policies grant the route's capability on the request's path. Without an
// auth section everyone may do everything (caller_kind::anyone).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include "api/auth/caller.h"
#include "api/http/request.h"
#include "api/transit/route_table.h"
#include "broker/auth_config.h"

namespace hsmb::api {

class authenticator;

// Refusals since the broker started (/metrics). One thread runs the routes.
struct gate_counters {
  std::uint64_t denied = 0;          // 403 permission denied
  std::uint64_t rate_limited = 0;    // 429 (a binding's rate)
  std::uint64_t missing_header = 0;  // 412 (auth.require_request_header)
};

class gate {
 public:
  explicit gate(std::optional<auth_config> cfg = std::nullopt);
  ~gate();
  gate(gate&&) noexcept;
  gate& operator=(gate&&) noexcept;

  bool configured() const { return auth_ != nullptr; }
  const gate_counters& counters() const { return counters_; }
  // 412 when auth.require_request_header is set and "X-Vault-Request: true" is missing.
  std::optional<response> precheck(const request& req) const;
  // Fills `who`; nullopt to run the route, else the answer (403 permission denied; 429 when the
  // caller's binding has a `rate` and its bucket is empty).
  std::optional<response> admit(const request& req, const route_spec& route, const target& t, caller& who) const;
  // Who a request that matches no route is (for its audit lines): anyone without an auth section.
  caller unrouted(const request& req) const;

 private:
  // A token bucket per binding: tokens refill at per_second, up to burst.
  struct bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;
  };
  std::optional<response> spend(const binding& b) const;

  std::unique_ptr<authenticator> auth_;
  mutable std::map<const binding*, bucket> buckets_;  // one thread runs the routes
  mutable gate_counters counters_;
};

}  // namespace hsmb::api
