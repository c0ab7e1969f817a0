#include "app/broker/readiness.h"

#include <cstdlib>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "broker/service_manager.h"
#include "common/sd_notify.h"

namespace hsmb::app {

// READY (and accepting connections) once every member serves or was found down by a real attempt:
// a broker that took traffic before reading a member's records could not tell which keys exist.
// In a hand-off (HSMB_HANDOFF=1: another generation serves meanwhile) at least one member must
// serve too, and there is no other bound: the supervisor kills a generation that is not READY by
// ready_timeout and the old one stays.
// Otherwise READY comes at the latest after half of ready_timeout, with the members that are
// ready by then; requests for keys on the others get 503 until they are read, never 404.
boost::asio::awaitable<void> announce_ready(member_pool& pool, key_service& keys, api::server& server,
                                            std::chrono::milliseconds ready_timeout) {
  const char* handoff = std::getenv("HSMB_HANDOFF");
  bool in_handoff = handoff && std::string_view(handoff) == "1";
  auto bound = in_handoff ? std::chrono::milliseconds(std::chrono::hours(24 * 365)) : ready_timeout / 2;
  // A hand-off never moves traffic to a generation that serves nothing: the old one may serve.
  // In a hand-off a member counts as down only after two failed attempts: one may be a start
  // storm's transient error, and the old generation may be serving that member meanwhile.
  auto ready = [&] { return in_handoff ? keys.ready(2) && pool.serving_count() > 0 : keys.ready(); };
  co_await pool.wait_until(ready, std::chrono::steady_clock::now() + bound);
  if (!keys.ready()) spdlog::warn("not every member is ready after {} ms; serving with those that are", bound.count());
  spdlog::info("ready: {} of {} members serving", pool.serving_count(), pool.size());
  server.start_accepting();
  sd_notify("READY=1\n" + status_line(pool));
}

}  // namespace hsmb::app
