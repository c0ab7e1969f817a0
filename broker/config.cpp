#include "broker/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <set>

#include "broker/audit_config.h"
#include "common/yaml_node.h"

namespace hsmb {
namespace {

// A PIN file, read straight into wiping memory: no stream buffer or std::string keeps a copy.
secure_string read_secret_file(const node_at& at, const std::string& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) at.fail("cannot read " + file + ": " + std::strerror(errno));
  secure_string out;
  std::array<char, 256> chunk;
  ssize_t n = 0;
  while ((n = ::read(fd, chunk.data(), chunk.size())) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) out.append(chunk.data(), static_cast<std::size_t>(n));
    if (out.size() > 4096) break;
  }
  int read_errno = errno;
  secure_wipe(chunk.data(), chunk.size());
  ::close(fd);
  if (n < 0) at.fail("cannot read " + file + ": " + std::strerror(read_errno));
  if (out.size() > 4096) at.fail(file + " is larger than a PIN (4 KiB)");
  return out;
}

void load_pin(const node_at& at, member_config& m) {
  at.expect_map({"file", "env", "value"});
  int sources = at.child("file").present() + at.child("env").present() + at.child("value").present();
  if (sources != 1) at.fail("give exactly one of file, env or value");
  if (auto f = at.child("file"); f.present()) {
    auto path = f.nonempty_text();
    m.pin = read_secret_file(f, path);
    while (!m.pin.empty() && (m.pin.back() == '\n' || m.pin.back() == '\r')) m.pin.pop_back();
    m.pin_source = "file " + path;
  } else if (auto e = at.child("env"); e.present()) {
    auto var = e.nonempty_text();
    const char* v = std::getenv(var.c_str());
    if (v == nullptr) e.fail("environment variable " + var + " is not set");
    m.pin = v;
    m.pin_source = "env " + var;
  } else {
    m.pin = at.child("value").text();
    m.pin_source = "value";
  }
  if (m.pin.empty()) at.fail("the PIN is empty");
}

member_config load_member(const node_at& at) {
  at.expect_map({"name", "module", "token_label", "slot", "pin", "env", "sessions", "weight"});
  member_config m;
  m.name = at.child("name").nonempty_text();
  static const std::regex name_re("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}");
  if (!std::regex_match(m.name, name_re)) at.child("name").fail("use letters, digits, '.', '_' or '-' (at most 63)");
  m.module = at.child("module").nonempty_text();
  if (auto l = at.child("token_label"); l.present()) m.token_label = l.nonempty_text();
  if (auto s = at.child("slot"); s.present()) m.slot = s.number(0, UINT64_MAX);
  if (m.token_label.empty() == !m.slot.has_value()) at.fail("give exactly one of token_label or slot");
  if (!at.child("pin").present()) at.child("pin").fail("required");
  load_pin(at.child("pin"), m);
  if (auto e = at.child("env"); e.present()) {
    if (!e.raw().IsMap()) e.fail("expected a mapping of variable names to values");
    for (auto it = e.raw().begin(); it != e.raw().end(); ++it)
      m.env[it->first.as<std::string>()] = e.child(it->first.as<std::string>()).text();
  }
  if (auto s = at.child("sessions"); s.present()) m.sessions = static_cast<std::uint32_t>(s.number(1, 64));
  if (auto w = at.child("weight"); w.present()) m.weight = static_cast<std::uint32_t>(w.number(1, 1000));
  return m;
}

void load_sections(const node_at& root, config& c) {
  if (auto s = root.child("state_dir"); s.present()) c.state_dir = s.nonempty_text();
  load_listen_section(root, c);

  auto members = root.child("members");
  if (!members.present()) members.fail("required: at least one member");
  std::size_t n = members.expect_sequence();
  if (n == 0) members.fail("at least one member is required");
  std::set<std::string> names;
  for (std::size_t i = 0; i < n; ++i) {
    c.members.push_back(load_member(members.item(i)));
    if (!names.insert(c.members.back().name).second)
      members.item(i).child("name").fail("duplicate member name \"" + c.members.back().name + "\"");
  }

  if (auto r = root.child("replication"); r.present()) {
    r.expect_map({"mode", "min_copies"});
    if (auto m = r.child("mode"); m.present()) {
      auto s = m.text();
      if (s == "broker") c.replication = replication_mode::broker;
      else if (s == "none") c.replication = replication_mode::none;
      else m.fail("expected broker or none, got \"" + s + "\"");
    }
    if (auto mc = r.child("min_copies"); mc.present()) {
      c.min_copies = static_cast<std::uint32_t>(mc.number(1, 64));
      if (c.min_copies > c.members.size()) mc.fail("larger than the number of members");
    }
  }
  if (auto t = root.child("timeouts"); t.present()) {
    t.expect_map({"request", "call"});
    if (auto r = t.child("request"); r.present()) c.request_timeout = r.positive_duration();
    if (auto k = t.child("call"); k.present()) c.call_timeout = k.positive_duration();
  }
  if (auto l = root.child("limits"); l.present()) {
    l.expect_map({"max_batch_items"});
    if (auto b = l.child("max_batch_items"); b.present()) c.max_batch_items = b.number(1, 100000);
  }
  if (auto a = root.child("auto_rotate"); a.present()) {
    a.expect_map({"check_interval", "min_period"});
    if (auto i = a.child("check_interval"); i.present()) c.auto_rotate_check = i.positive_duration();
    if (auto m = a.child("min_period"); m.present()) {
      c.auto_rotate_min_period = m.positive_duration();
      if (c.auto_rotate_min_period < std::chrono::seconds(1)) m.fail("must be at least 1s (periods are whole seconds)");
    }
  }
  if (auto h = root.child("health"); h.present()) {
    h.expect_map({"probe_interval", "idle_probe_interval", "max_backoff"});
    if (auto p = h.child("probe_interval"); p.present()) c.probe_interval = p.positive_duration();
    if (auto p = h.child("idle_probe_interval"); p.present()) c.idle_probe_interval = p.positive_duration();
    if (auto p = h.child("max_backoff"); p.present()) {
      c.max_backoff = p.positive_duration();
      if (c.max_backoff < c.probe_interval) p.fail("must be at least probe_interval");
    }
    c.max_backoff = std::max(c.max_backoff, c.probe_interval);
  }
  load_supervisor_section(root, c);
  load_audit_section(root, c.audit);
  if (auto r = root.child("recycle"); r.present()) {
    r.expect_map({"worker_max_age"});
    if (auto a = r.child("worker_max_age"); a.present()) c.worker_max_age = a.positive_duration();
  }
}

}  // namespace

config parse_config(const std::string& yaml_text, const std::string& source_name) {
  node_at root(parse_yaml(yaml_text, source_name), "");
  config c;
  c.source_path = source_name;
  try {  // a key that is not a plain string (`? [a]`) throws from yaml-cpp's conversions
    root.expect_map({"state_dir", "listen", "members", "replication", "timeouts", "health", "supervisor", "recycle", "limits",
                     "auth", "policies", "audit", "auto_rotate"});
    load_sections(root, c);
    c.auth = load_auth_sections(root);
  } catch (const YAML::Exception& e) {
    throw config_error(source_name + ": " + e.what());
  }
  if (c.call_timeout > c.request_timeout) throw config_error("timeouts.call: must not be longer than timeouts.request");
  return c;
}

config load_config(const std::string& path) {
  return parse_config(read_config_text(path), path);
}

}  // namespace hsmb
