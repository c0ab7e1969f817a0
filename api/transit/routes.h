// The broker's HTTP routes (README "API"): Transit, health, members, metrics, Vault's token and sys.
// Turns each request into a key_service call and the result into Vault-shaped JSON; the routes
// are a table (route_table.h): match, method check, then one handler per operation.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "api/audit/audit_log.h"
#include "api/auth/caller.h"
#include "api/auth/gate.h"
#include "api/http/request.h"
#include "api/metrics/request_metrics.h"
#include "api/transit/route_table.h"
#include "broker/key_service.h"
#include "broker/member_pool.h"

namespace hsmb::api {

class routes {
 public:
  // `callers`: who may call what (auth: and policies:); the default lets everyone do everything.
  routes(key_service& keys, member_pool& pool, std::size_t max_batch_items = 1000, gate callers = gate())
      : keys_(keys), pool_(pool), max_batch_items_(max_batch_items), gate_(std::move(callers)) {}
  // Answers the request and counts it (route, status, duration) for /metrics.
  boost::asio::awaitable<response> handle(const request& req);
  // Every request from now on is audited there (README "Audit"); nullptr: none.
  void set_audit(audit::audit_log* log) { audit_ = log; }
  // Every route, in match order: what a policy check or an audit record reads about a request.
  static const route_table& table();
  // GET /metrics: api/metrics/prometheus.h.
  std::string metrics_text();

 private:
  key_service& keys_;
  member_pool& pool_;
  std::size_t max_batch_items_;
  gate gate_;
  audit::audit_log* audit_ = nullptr;
  request_metrics metrics_{table().routes().size()};
  // handle() without the counting; `route` is set to the matched route's index.
  boost::asio::awaitable<response> answer(const request& req, std::size_t& route);
  // `body`: the route's JSON body, parsed once for the handler and the audit line.
  boost::asio::awaitable<response> dispatch(const request& req, const target& t, route_match& found, const caller& who,
                                            const broker_result<boost::json::object>& body);
};

}  // namespace hsmb::api
