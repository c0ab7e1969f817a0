#include "common/service_settings.h"

#include <algorithm>
#include <regex>

#include "common/yaml_node.h"

namespace hsmb {
namespace {

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

unix_listen_config load_unix(const node_at& u) {
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
  return ul;
}

// Paths only: the supervisor reads this too and must never open the key; the broker loads the
// files at start (api/http/tls_context.h), naming these key paths when one is bad.
tls_config load_tls(const node_at& t) {
  t.expect_map({"cert", "key", "client_ca"});
  for (const char* required : {"cert", "key"})
    if (!t.child(required).present()) t.child(required).fail("required");
  tls_config out;
  out.cert = t.child("cert").nonempty_text();
  out.key = t.child("key").nonempty_text();
  if (auto ca = t.child("client_ca"); ca.present()) out.client_ca = ca.nonempty_text();
  return out;
}

http_listen_config load_http(const node_at& h) {
  h.expect_map({"address", "tls", "max_connections", "max_connections_per_peer", "allowed_hosts", "allowed_origins"});
  http_listen_config hl;
  hl.address = h.child("address").nonempty_text();
  static const std::regex addr_re(R"((\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5})");
  if (!std::regex_match(hl.address, addr_re)) h.child("address").fail("expected host:port, got \"" + hl.address + "\"");
  if (auto t = h.child("tls"); t.present()) hl.tls = load_tls(t);
  load_connection_limits(h, hl.limits, 1.0);  // loopback: every client is 127.0.0.1
  hl.allowed_hosts = load_names(h.child("allowed_hosts"));
  hl.allowed_origins = load_names(h.child("allowed_origins"));
  return hl;
}

}  // namespace

void load_listen_section(const node_at& root, service_settings& out) {
  auto at = root.child("listen");
  if (!at.present()) at.fail("required");
  at.expect_map({"unix", "http"});
  if (auto u = at.child("unix"); u.present()) out.unix_listener = load_unix(u);
  if (auto h = at.child("http"); h.present()) out.http_listener = load_http(h);
  if (!out.unix_listener && !out.http_listener) at.fail("give at least one of unix or http");
}

void load_supervisor_section(const node_at& root, service_settings& out) {
  auto s = root.child("supervisor");
  if (!s.present()) return;
  s.expect_map({"restart_interval", "restart_jitter", "drain_timeout", "heartbeat_timeout", "ready_timeout"});
  if (auto h = s.child("heartbeat_timeout"); h.present()) out.heartbeat_timeout = h.positive_duration();
  if (auto r = s.child("ready_timeout"); r.present()) out.ready_timeout = r.positive_duration();
  if (auto r = s.child("restart_interval"); r.present()) out.restart_interval = r.positive_duration();
  if (auto j = s.child("restart_jitter"); j.present()) {
    auto text = j.text();
    static const std::regex pct("([0-9]{1,2})%");
    std::smatch m;
    if (!std::regex_match(text, m, pct)) j.fail("expected a percentage below 100 like 10%, got \"" + text + "\"");
    out.restart_jitter = std::stoi(m[1]) / 100.0;
  }
  if (auto d = s.child("drain_timeout"); d.present()) out.drain_timeout = d.positive_duration();
}

service_settings parse_service_settings(const std::string& yaml_text, const std::string& source_name) {
  node_at root(parse_yaml(yaml_text, source_name), "");
  service_settings out;
  try {  // a key that is not a plain string (`? [a]`) throws from yaml-cpp's conversions
    if (!root.raw().IsMap()) root.fail("expected a mapping");
    load_listen_section(root, out);
    load_supervisor_section(root, out);
  } catch (const YAML::Exception& e) {
    throw config_error(source_name + ": " + e.what());
  }
  return out;
}

service_settings load_service_settings(const std::string& path) {
  return parse_service_settings(read_config_text(path), path);
}

}  // namespace hsmb
