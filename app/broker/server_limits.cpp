#include "app/broker/server_limits.h"

#include <stdexcept>
#include <string>

#include <spdlog/spdlog.h>

#include "broker/descriptor_budget.h"

namespace hsmb::app {

api::server_limits server_limits_of(const config& cfg) {
  api::server_limits limits;
  limits.max_body = cfg.max_request_bytes;
  auto fds = descriptor_limit();
  if (auto budget = check_descriptor_budget(cfg, fds); !budget.empty()) spdlog::warn("{}; connections beyond that are refused", budget);
  limits.max_connections = connection_budget(cfg, fds);
  if (limits.max_connections == 0)
    throw std::runtime_error("RLIMIT_NOFILE (" + std::to_string(fds) + ") leaves no descriptor for connections; raise it");
  auto listener = [](const connection_limits& l) { return api::listener_limits{l.max_connections, l.max_connections_per_peer}; };
  if (cfg.unix_listener) limits.unix_listener = listener(cfg.unix_listener->limits);
  if (cfg.http_listener) {
    limits.tcp_listener = listener(cfg.http_listener->limits);
    limits.allowed_hosts = cfg.http_listener->allowed_hosts;
    limits.allowed_origins = cfg.http_listener->allowed_origins;
  }
  return limits;
}

}  // namespace hsmb::app
