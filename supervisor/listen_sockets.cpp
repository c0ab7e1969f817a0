#include "supervisor/listen_sockets.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "api/http/server.h"

namespace hsmb::supervisor {

std::vector<listen_socket> sockets_from_systemd() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  std::string names = std::getenv("LISTEN_FDNAMES") ? std::getenv("LISTEN_FDNAMES") : "";
  bool ours = pid && fds && std::strtoll(pid, nullptr, 10) == ::getpid();
  int count = ours ? std::atoi(fds) : 0;
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  std::vector<listen_socket> out;
  std::istringstream split(names);
  for (int i = 0; i < count; ++i) {
    listen_socket s{3 + i, {}};
    std::getline(split, s.name, ':');
    ::fcntl(s.fd, F_SETFD, FD_CLOEXEC);  // handed on explicitly, never inherited by accident
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<listen_socket> open_sockets(const config& cfg) {
  std::vector<listen_socket> out;
  if (cfg.unix_listener) {
    const auto& u = *cfg.unix_listener;
    out.push_back({api::open_unix_listener_fd({u.path, u.mode, u.group}), "unix"});
  }
  if (cfg.http_listener) out.push_back({api::open_tcp_listener_fd(cfg.http_listener->address), "http"});
  for (auto& s : out) ::fcntl(s.fd, F_SETFD, FD_CLOEXEC);
  return out;
}

}  // namespace hsmb::supervisor
