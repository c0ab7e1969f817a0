#include "supervisor/listen_sockets.h"

#include <fcntl.h>

#include "api/http/server.h"
#include "common/service_env.h"

namespace hsmb::supervisor {

std::vector<listen_socket> sockets_from_systemd() {
  auto out = take_listen_fds();
  for (auto& s : out) ::fcntl(s.fd, F_SETFD, FD_CLOEXEC);  // handed on explicitly, never inherited by accident
  return out;
}

std::vector<listen_socket> open_sockets(const config& cfg) {
  std::vector<listen_socket> out;
  if (cfg.unix_listener) {
    const auto& u = *cfg.unix_listener;
    out.push_back({api::open_unix_listener_fd({u.path, u.mode, u.group}), "unix"});
  }
  if (cfg.http_listener) out.push_back({api::open_tcp_listener_fd(cfg.http_listener->address), "http"});
  return out;
}

}  // namespace hsmb::supervisor
