#include "common/service_env.h"

#include <fcntl.h>
#include <linux/close_range.h>
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

void give_listen_fds(const std::vector<passed_socket>& sockets) {
  // First above every target, then down: no socket clobbers another on the way.
  const int high = 3 + static_cast<int>(sockets.size());
  std::vector<int> staged;
  for (auto& s : sockets) staged.push_back(::fcntl(s.fd, F_DUPFD, high));
  std::string names;
  for (std::size_t i = 0; i < staged.size(); ++i) {
    ::dup2(staged[i], 3 + static_cast<int>(i));  // dup2 clears FD_CLOEXEC on the target
    names += (i ? ":" : "") + sockets[i].name;
  }
  ::close_range(3 + static_cast<unsigned>(sockets.size()), ~0U, 0);
  if (sockets.empty()) return;
  ::setenv("LISTEN_FDS", std::to_string(sockets.size()).c_str(), 1);
  ::setenv("LISTEN_FDNAMES", names.c_str(), 1);
  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
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
