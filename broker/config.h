// The broker's YAML configuration (README "Configuration reference"). Loading validates
// everything and throws config_error naming the key path, e.g. "members[1].pin.file: ...".
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "broker/auth_config.h"
#include "common/bytes.h"
#include "common/config_error.h"
#include "common/service_settings.h"

namespace hsmb {

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

// audit: { file: PATH, fail_closed: true } (README "Audit"); no section: no audit trail.
struct audit_config {
  std::string file;         // empty: audit off
  bool fail_closed = true;  // a request that cannot be audited is refused with 503
};

// listen: and supervisor: (unix_listener, http_listener, restart_interval, drain_timeout, ...)
// come from service_settings, which hsm-supervisor reads too.
struct config : service_settings {
  std::string source_path;
  std::string state_dir = "/var/lib/hsm-broker";
  std::vector<member_config> members;
  replication_mode replication = replication_mode::broker;
  std::uint32_t min_copies = 1;
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds call_timeout{2000};
  std::chrono::milliseconds probe_interval{1000};       // first retry of a down member; probes of suspect ones
  std::chrono::milliseconds idle_probe_interval{30'000};  // a serving member idle this long is probed
  std::chrono::milliseconds max_backoff{30'000};          // cap of a down member's retry back-off
  std::chrono::milliseconds worker_max_age{1800'000};
  std::size_t max_request_bytes = 4u << 20;
  std::size_t max_batch_items = 1000;  // batch_input entries per request
  // auto_rotate: { check_interval, min_period }: how often keys are checked for an elapsed
  // auto_rotate_period, and the shortest period a key may have (Vault: 1 h).
  std::chrono::milliseconds auto_rotate_check{60'000};
  std::chrono::milliseconds auto_rotate_min_period{3'600'000};
  std::optional<auth_config> auth;     // none: everyone who can connect may do everything
  audit_config audit;
};

// Parses and validates; reads PIN files and environment variables.
config load_config(const std::string& path);
config parse_config(const std::string& yaml_text, const std::string& source_name = "<string>");

}  // namespace hsmb
