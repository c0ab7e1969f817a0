#include "common/service_env.h"

#include <unistd.h>

#include <cstdlib>
#include <sstream>

namespace hsmb {
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

std::string take_text(const char* name) {
  const char* v = std::getenv(name);
  std::string out = v ? v : "";
  ::unsetenv(name);
  return out;
}

}  // namespace

std::vector<passed_socket> take_listen_fds() {
  auto pid = number_env("LISTEN_PID");
  auto count = number_env("LISTEN_FDS");
  std::istringstream names(take_text("LISTEN_FDNAMES"));
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  std::vector<passed_socket> out;
  if (!pid || *pid != ::getpid() || !count || *count <= 0) return out;
  for (long long i = 0; i < *count; ++i) {
    passed_socket s{3 + static_cast<int>(i), {}};
    std::getline(names, s.name, ':');
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<std::chrono::microseconds> take_watchdog_period() {
  auto usec = number_env("WATCHDOG_USEC");
  auto pid = number_env("WATCHDOG_PID");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  if (!usec || *usec <= 0 || (pid && *pid != ::getpid())) return std::nullopt;
  return std::chrono::microseconds(*usec);
}

}  // namespace hsmb
