#include "app/broker/listeners.h"

#include "broker/service_manager.h"

namespace hsmb::app {

void open_listeners(api::server& server, const config& cfg) {
  // Sockets from hsm-supervisor or systemd take the place of the configured ones.
  auto inherited = inherited_listeners();
  for (int fd : inherited) server.adopt_listener(fd);
  if (inherited.empty() && cfg.unix_listener)
    server.listen_unix({cfg.unix_listener->path, cfg.unix_listener->mode, cfg.unix_listener->group});
  if (inherited.empty() && cfg.http_listener) server.listen_tcp(cfg.http_listener->address);
}

}  // namespace hsmb::app
