#include "broker/service_manager.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "broker/member_pool.h"
#include "common/sd_notify.h"

namespace hsmb {
namespace asio = boost::asio;

namespace {

// The variable as a number, or nullopt when unset or not a number.
std::optional<long long> number_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  if (*end != '\0') return std::nullopt;
  return n;
}

asio::awaitable<void> heartbeat(member_pool& pool, std::chrono::microseconds period) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::string last_status;
  for (;;) {
    auto status = "STATUS=serving: " + std::to_string(pool.serving_count()) + " of " + std::to_string(pool.size()) + " members";
    sd_notify(status == last_status ? std::string("WATCHDOG=1") : "WATCHDOG=1\n" + status);
    last_status = status;
    timer.expires_after(period / 3);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

}  // namespace

std::vector<int> inherited_listeners() {
  auto pid = number_env("LISTEN_PID");
  auto count = number_env("LISTEN_FDS");
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  std::vector<int> fds;
  if (!pid || *pid != ::getpid() || !count || *count <= 0) return fds;
  for (long long i = 0; i < *count; ++i) fds.push_back(3 + static_cast<int>(i));
  return fds;
}

void start_heartbeat(asio::io_context& io, member_pool& pool) {
  auto usec = number_env("WATCHDOG_USEC");
  auto pid = number_env("WATCHDOG_PID");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  if (!usec || *usec <= 0 || (pid && *pid != ::getpid())) return;
  asio::co_spawn(io, heartbeat(pool, std::chrono::microseconds(*usec)), asio::detached);
}

}  // namespace hsmb
