#include "broker/service_manager.h"

#include <chrono>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "broker/member_pool.h"
#include "common/sd_notify.h"
#include "common/service_env.h"

namespace hsmb {
namespace asio = boost::asio;

namespace {

asio::awaitable<void> heartbeat(member_pool& pool, std::chrono::microseconds period) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::string last_status;
  for (;;) {
    auto status = status_line(pool);
    sd_notify(status == last_status ? std::string("WATCHDOG=1") : "WATCHDOG=1\n" + status);
    last_status = status;
    timer.expires_after(period / 3);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

}  // namespace

std::string status_line(const member_pool& pool) {
  return "STATUS=serving: " + std::to_string(pool.serving_count()) + " of " + std::to_string(pool.size()) + " members";
}

std::vector<int> inherited_listeners() {
  std::vector<int> fds;
  for (auto& s : take_listen_fds()) fds.push_back(s.fd);  // adopted by position; names are for people
  return fds;
}

void start_heartbeat(asio::io_context& io, member_pool& pool) {
  if (auto period = take_watchdog_period()) asio::co_spawn(io, heartbeat(pool, *period), asio::detached);
}

}  // namespace hsmb
