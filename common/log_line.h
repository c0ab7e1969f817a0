// One log line as every program writes it (README "Logs"): text, "TIME LEVEL [gen N] message", or
// with HSMB_LOG_FORMAT=json one JSON object per line with journald's field names (MESSAGE,
// PRIORITY, SYSLOG_IDENTIFIER, SYSLOG_PID) and the broker's (generation, member). Free of spdlog:
// hsm-worker writes its few lines with it directly.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace hsmb::logline {

enum class format { text, json };
// HSMB_LOG_FORMAT: "json", else text.
format format_from_env();
// HSMB_GENERATION, set by hsm-supervisor for each broker generation (and inherited by its workers).
std::optional<int> generation_from_env();

struct record {
  std::chrono::system_clock::time_point time;
  std::string_view level;  // spdlog's names: "info", "warning", "error", "critical", "debug"
  std::string_view identifier;  // "hsm-broker", "hsm-worker", "hsm-supervisor"
  int pid = 0;
  std::optional<int> generation;
  std::string_view member;  // empty: taken from a "member NAME: ..." message, if any
  std::string_view message;
};

// syslog's priority for a level name: critical 2, error 3, warning 4, info 6, debug and trace 7.
int priority(std::string_view level);
// "2026-01-31T12:00:00.123" in local time (as spdlog's %Y-%m-%dT%H:%M:%S.%e): the text lines.
std::string timestamp(std::chrono::system_clock::time_point t);
// "2026-01-31T11:00:00.123Z": the JSON lines' "time", unambiguous for collectors.
std::string utc_timestamp(std::chrono::system_clock::time_point t);
// The record as one JSON object and a newline.
std::string json_line(const record& r);
// `s` as the inside of a JSON string; a byte that is not well-formed UTF-8 becomes \ufffd.
void append_json_escaped(std::string& out, std::string_view s);
// "hsm-a" of "member hsm-a: down", else empty.
std::string_view member_of(std::string_view message);

}  // namespace hsmb::logline
