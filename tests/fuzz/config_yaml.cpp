// The YAML configuration (broker/config.cpp): parse_config must accept the text or throw
// config_error; any other exception, a crash or a hang is a bug. What it accepts must hold
// together (the checks below are the promises the rest of the broker relies on).
#include <cstdint>
#include <set>
#include <string>

#include "broker/config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  // pin.file names a file the parser reads: not a device or a kernel file, which may never end
  // (/dev/zero, /proc/kmsg) or block (/dev/stdin). Those are the operator's to avoid.
  for (const char* special : {"/dev", "/proc", "/sys"})
    if (text.find(special) != std::string::npos) return -1;
  hsmb::config c;
  try {
    c = hsmb::parse_config(text, "fuzz.yaml");
  } catch (const hsmb::config_error&) {
    return 0;  // refused, with a message: fine
  }
  // Anything else thrown escapes to libFuzzer, which reports it as a crash.
  FUZZ_CHECK(!c.members.empty());
  FUZZ_CHECK(c.unix_listener || c.http_listener);
  std::set<std::string> names;
  for (auto& m : c.members) {
    FUZZ_CHECK(!m.name.empty() && m.name.size() <= 63);
    FUZZ_CHECK(names.insert(m.name).second);
    FUZZ_CHECK(!m.module.empty());
    FUZZ_CHECK(m.token_label.empty() == m.slot.has_value());
    FUZZ_CHECK(!m.pin.empty());
    FUZZ_CHECK(m.sessions >= 1 && m.sessions <= 64);
    FUZZ_CHECK(m.weight >= 1 && m.weight <= 1000);
  }
  FUZZ_CHECK(c.min_copies >= 1 && c.min_copies <= c.members.size());
  FUZZ_CHECK(c.call_timeout <= c.request_timeout);
  for (auto d : {c.request_timeout, c.call_timeout, c.probe_interval, c.idle_probe_interval, c.max_backoff,
                 c.restart_interval, c.drain_timeout, c.heartbeat_timeout, c.ready_timeout, c.worker_max_age})
    FUZZ_CHECK(d.count() > 0);
  FUZZ_CHECK(c.max_backoff >= c.probe_interval);
  FUZZ_CHECK(c.restart_jitter >= 0 && c.restart_jitter < 1);
  if (c.unix_listener) FUZZ_CHECK(!c.unix_listener->path.empty() && c.unix_listener->path.size() < 108);
  if (c.http_listener) FUZZ_CHECK(!c.http_listener->address.empty());
  return 0;
}
