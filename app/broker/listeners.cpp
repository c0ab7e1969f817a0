#include "app/broker/listeners.h"

#include "api/http/tls_context.h"
#include "broker/service_manager.h"

namespace hsmb::app {

std::shared_ptr<const api::tls_context> load_tls(const config& cfg) {
  if (!cfg.http_listener || !cfg.http_listener->tls) return nullptr;
  const auto& t = *cfg.http_listener->tls;
  return api::tls_context::load({t.cert, t.key, t.client_ca});
}

void open_listeners(api::server& server, const config& cfg) {
  server.use_tls(load_tls(cfg));  // before the TCP listener is added: it serves TLS from its start
  // Sockets from hsm-supervisor or systemd take the place of the configured ones.
  auto inherited = inherited_listeners();
  for (int fd : inherited) server.adopt_listener(fd);
  if (inherited.empty() && cfg.unix_listener)
    server.listen_unix({cfg.unix_listener->path, cfg.unix_listener->mode, cfg.unix_listener->group});
  if (inherited.empty() && cfg.http_listener) server.listen_tcp(cfg.http_listener->address);
}

}  // namespace hsmb::app
