// The broker's YAML configuration (README "Configuration reference"). Loading validates
// everything and throws config_error naming the key path, e.g. "members[1].pin.file: ...".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/bytes.h"

namespace hsmb {

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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

struct tls_config {
  std::string cert, key, client_ca;
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

struct member_config {
  std::string name;
  std::string module;
  std::string token_label;
  std::optional<std::uint64_t> slot;
  std::string pin_source;  // "file /path", "env VAR" or "value": for messages, never the PIN
  secure_string pin;
  std::map<std::string, std::string> env;  // added to this member's worker only
  std::uint32_t sessions = 4;
  std::uint32_t weight = 1;
};

enum class replication_mode { broker, none };

struct config {
  std::string source_path;
  std::string state_dir = "/var/lib/hsm-broker";
  std::optional<unix_listen_config> unix_listener;
  std::optional<http_listen_config> http_listener;
  std::vector<member_config> members;
  replication_mode replication = replication_mode::broker;
  std::uint32_t min_copies = 1;
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds call_timeout{2000};
  std::chrono::milliseconds probe_interval{1000};       // first retry of a down member; probes of suspect ones
  std::chrono::milliseconds idle_probe_interval{30'000};  // a serving member idle this long is probed
  std::chrono::milliseconds max_backoff{30'000};          // cap of a down member's retry back-off
  std::chrono::milliseconds restart_interval{3600'000};
  double restart_jitter = 0.10;  // fraction of restart_interval
  std::chrono::milliseconds drain_timeout{30'000};
  std::chrono::milliseconds heartbeat_timeout{10'000};  // a broker silent this long is hung: SIGKILL
  std::chrono::milliseconds ready_timeout{60'000};      // a new generation must be READY within this
  std::chrono::milliseconds worker_max_age{1800'000};
  std::size_t max_request_bytes = 4u << 20;
  std::size_t max_batch_items = 1000;  // batch_input entries per request
};

// Parses and validates; reads PIN files and environment variables.
config load_config(const std::string& path);
config parse_config(const std::string& yaml_text, const std::string& source_name = "<string>");

}  // namespace hsmb
