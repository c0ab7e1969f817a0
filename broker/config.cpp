#include "broker/config.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <regex>
#include <set>
#include <sstream>

#include "common/duration.h"

namespace hsmb {
namespace {

// A YAML node with the path that leads to it, so every error can name its key.
class node_at {
 public:
  node_at(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& why) const {
    throw config_error((path_.empty() ? std::string("config") : path_) + ": " + why);
  }
  const std::string& path() const { return path_; }
  bool present() const { return node_.IsDefined() && !node_.IsNull(); }

  node_at child(const std::string& key) const {
    return {node_[key], path_.empty() ? key : path_ + "." + key};
  }
  node_at item(std::size_t i) const { return {node_[i], path_ + "[" + std::to_string(i) + "]"}; }

  void expect_map(std::initializer_list<const char*> allowed) const {
    if (!node_.IsMap()) fail("expected a mapping");
    std::set<std::string> ok(allowed.begin(), allowed.end());
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      auto key = it->first.as<std::string>();
      if (!ok.count(key)) child(key).fail("unknown key");
    }
  }
  std::size_t expect_sequence() const {
    if (!node_.IsSequence()) fail("expected a list");
    return node_.size();
  }
  std::string text() const {
    if (!node_.IsScalar()) fail("expected a string");
    return node_.Scalar();
  }
  std::string nonempty_text() const {
    auto s = text();
    if (s.empty()) fail("must not be empty");
    return s;
  }
  std::uint64_t number(std::uint64_t min, std::uint64_t max) const {
    auto s = text();
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno || s[0] == '-') fail("expected a whole number, got \"" + s + "\"");
    if (v < min || v > max) fail("must be between " + std::to_string(min) + " and " + std::to_string(max));
    return v;
  }
  bool boolean() const {
    auto s = text();
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
    fail("expected true or false, got \"" + s + "\"");
  }
  std::chrono::milliseconds duration() const {
    auto s = text();
    auto d = parse_duration(s);
    if (!d) fail("expected a duration like 250ms, 2s, 5m or 1h, got \"" + s + "\"");
    return *d;
  }
  std::chrono::milliseconds positive_duration() const {
    auto d = duration();
    if (d.count() == 0) fail("must be greater than zero");
    return d;
  }
  const YAML::Node& raw() const { return node_; }

 private:
  YAML::Node node_;
  std::string path_;
};

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

// `per_peer_default`: the share of max_connections one peer gets when the config says nothing.
void load_connection_limits(const node_at& at, connection_limits& l, double per_peer_default) {
  if (auto m = at.child("max_connections"); m.present()) l.max_connections = m.number(1, 1u << 20);
  if (auto m = at.child("max_connections_per_peer"); m.present()) {
    l.max_connections_per_peer = m.number(1, 1u << 20);
    if (l.max_connections_per_peer > l.max_connections) m.fail("larger than max_connections");
  } else {
    l.max_connections_per_peer = std::max<std::size_t>(1, static_cast<std::size_t>(double(l.max_connections) * per_peer_default));
  }
}

std::vector<std::string> load_names(const node_at& at) {
  std::vector<std::string> out;
  if (!at.present()) return out;
  for (std::size_t i = 0, n = at.expect_sequence(); i < n; ++i) out.push_back(at.item(i).nonempty_text());
  return out;
}

void load_listen(const node_at& at, config& c) {
  at.expect_map({"unix", "http"});
  if (auto u = at.child("unix"); u.present()) {
    u.expect_map({"path", "mode", "group", "max_connections", "max_connections_per_peer"});
    unix_listen_config ul;
    ul.path = u.child("path").nonempty_text();
    if (ul.path.size() >= 108) u.child("path").fail("longer than a Unix socket path may be (107 bytes)");
    if (auto m = u.child("mode"); m.present()) {
      auto s = m.text();
      static const std::regex mode_re("0?[0-7]{3}");
      if (!std::regex_match(s, mode_re)) m.fail("expected an octal mode like \"0660\", got \"" + s + "\"");
      ul.mode = static_cast<mode_t>(std::stoul(s, nullptr, 8));
    }
    if (auto g = u.child("group"); g.present()) ul.group = g.nonempty_text();
    load_connection_limits(u, ul.limits, 0.5);  // a uid: half, so one user never takes it all
    c.unix_listener = ul;
  }
  if (auto h = at.child("http"); h.present()) {
    h.expect_map({"address", "tls", "max_connections", "max_connections_per_peer", "allowed_hosts", "allowed_origins"});
    http_listen_config hl;
    hl.address = h.child("address").nonempty_text();
    static const std::regex addr_re(R"((\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5})");
    if (!std::regex_match(hl.address, addr_re)) h.child("address").fail("expected host:port, got \"" + hl.address + "\"");
    if (auto t = h.child("tls"); t.present()) {
      t.expect_map({"cert", "key", "client_ca"});
      t.fail("TLS is not supported by this version; listen on loopback or the Unix socket");
    }
    load_connection_limits(h, hl.limits, 1.0);  // loopback: every client is 127.0.0.1
    hl.allowed_hosts = load_names(h.child("allowed_hosts"));
    hl.allowed_origins = load_names(h.child("allowed_origins"));
    c.http_listener = hl;
  }
  if (!c.unix_listener && !c.http_listener) at.fail("give at least one of unix or http");
}

void load_sections(const node_at& root, config& c) {
  if (auto s = root.child("state_dir"); s.present()) c.state_dir = s.nonempty_text();
  if (!root.child("listen").present()) root.child("listen").fail("required");
  load_listen(root.child("listen"), c);

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
  if (auto s = root.child("supervisor"); s.present()) {
    s.expect_map({"restart_interval", "restart_jitter", "drain_timeout", "heartbeat_timeout", "ready_timeout"});
    if (auto h = s.child("heartbeat_timeout"); h.present()) c.heartbeat_timeout = h.positive_duration();
    if (auto r = s.child("ready_timeout"); r.present()) c.ready_timeout = r.positive_duration();
    if (auto r = s.child("restart_interval"); r.present()) c.restart_interval = r.positive_duration();
    if (auto j = s.child("restart_jitter"); j.present()) {
      auto text = j.text();
      static const std::regex pct("([0-9]{1,2})%");
      std::smatch m;
      if (!std::regex_match(text, m, pct)) j.fail("expected a percentage below 100 like 10%, got \"" + text + "\"");
      c.restart_jitter = std::stoi(m[1]) / 100.0;
    }
    if (auto d = s.child("drain_timeout"); d.present()) c.drain_timeout = d.positive_duration();
  }
  if (auto r = root.child("recycle"); r.present()) {
    r.expect_map({"worker_max_age"});
    if (auto a = r.child("worker_max_age"); a.present()) c.worker_max_age = a.positive_duration();
  }
}

}  // namespace

config parse_config(const std::string& yaml_text, const std::string& source_name) {
  YAML::Node doc;
  try {
    doc = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw config_error(source_name + ": not valid YAML: " + e.what());
  }
  node_at root(doc, "");
  config c;
  c.source_path = source_name;
  try {  // a key that is not a plain string (`? [a]`) throws from yaml-cpp's conversions
    root.expect_map({"state_dir", "listen", "members", "replication", "timeouts", "health", "supervisor", "recycle", "limits"});
    load_sections(root, c);
  } catch (const YAML::Exception& e) {
    throw config_error(source_name + ": " + e.what());
  }
  if (c.call_timeout > c.request_timeout) throw config_error("timeouts.call: must not be longer than timeouts.request");
  return c;
}

config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config_error(path + ": cannot read: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path);
}

}  // namespace hsmb
