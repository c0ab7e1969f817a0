#include "supervisor/listen_sockets.h"

#include <fcntl.h>

#include "common/listen_socket.h"
#include "common/service_env.h"

namespace hsmb::supervisor {

std::vector<listen_socket> sockets_from_systemd() {
  auto out = take_listen_fds();
  for (auto& s : out) ::fcntl(s.fd, F_SETFD, FD_CLOEXEC);  // handed on explicitly, never inherited by accident
  return out;
}

std::vector<listen_socket> open_sockets(const service_settings& settings) {
  std::vector<listen_socket> out;
  if (settings.unix_listener) {
    const auto& u = *settings.unix_listener;
    out.push_back({open_unix_listener_fd({u.path, u.mode, u.group}), "unix"});
  }
  if (settings.http_listener) out.push_back({open_tcp_listener_fd(settings.http_listener->address), "http"});
  return out;
}

}  // namespace hsmb::supervisor
