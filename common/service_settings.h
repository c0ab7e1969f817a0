// The parts of the configuration file that hsm-supervisor reads as well as hsm-broker: `listen:`
// and `supervisor:` (README "Configuration reference"). One parser for both, so they cannot
// disagree; broker/config.h adds the rest of the file (members, PINs, timeouts, ...).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/config_error.h"

namespace hsmb {

class node_at;

// Connections each listener takes, and each peer (a uid on the Unix socket, an address on TCP)
// within it: one caller flooding one listener leaves the other listener, and other callers, room.
// On loopback TCP every client has the address 127.0.0.1: the per-peer cap tells callers apart
// on the Unix socket (by uid) and on non-loopback binds only; by default it is the listener's.
struct connection_limits {
  std::size_t max_connections = 1024;
  std::size_t max_connections_per_peer = 0;  // 0: as max_connections (Unix socket: 512)
};

struct unix_listen_config {
  std::string path;
  mode_t mode = 0660;
  std::optional<std::string> group;
  connection_limits limits;
};

// listen.http.tls: PEM files. A client_ca makes a client certificate signed by it required (mTLS).
struct tls_config {
  std::string cert, key;
  std::string client_ca;  // empty: no client certificate asked for
};

struct http_listen_config {
  std::string address;  // host:port
  std::optional<tls_config> tls;
  connection_limits limits;
  // Host header values accepted besides the listener's own address (and localhost forms).
  std::vector<std::string> allowed_hosts;
  // Origin header values accepted; a request with any other Origin (a browser page) is refused.
  std::vector<std::string> allowed_origins;
};

struct service_settings {
  std::optional<unix_listen_config> unix_listener;
  std::optional<http_listen_config> http_listener;
  std::chrono::milliseconds restart_interval{3600'000};
  double restart_jitter = 0.10;  // fraction of restart_interval
  std::chrono::milliseconds drain_timeout{30'000};
  std::chrono::milliseconds heartbeat_timeout{10'000};  // a broker silent this long is hung: SIGKILL
  std::chrono::milliseconds ready_timeout{60'000};      // a new generation must be READY within this
};

// hsm-supervisor's reading of the file: `listen:` and `supervisor:`, validated as hsm-broker
// validates them; nothing else is read (no PIN file). Throws config_error.
service_settings load_service_settings(const std::string& path);
service_settings parse_service_settings(const std::string& yaml_text, const std::string& source_name = "<string>");

// The sections, for a parser of the whole file: `listen:` (required) and `supervisor:` of `root`.
void load_listen_section(const node_at& root, service_settings& out);
void load_supervisor_section(const node_at& root, service_settings& out);

}  // namespace hsmb
