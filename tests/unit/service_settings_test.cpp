// hsm-supervisor's reading of the configuration (common/service_settings.h): listen: and
// supervisor: only, with the broker's checks and messages; no PIN file is opened.
#include <doctest/doctest.h>

#include <string>

#include "broker/config.h"
#include "common/service_settings.h"

using namespace hsmb;

namespace {

const std::string sample = R"(
listen:
  unix: { path: /run/hsm-broker/broker.sock, mode: "0600", group: hsm }
  http: { address: "127.0.0.1:8200", max_connections: 100 }
members:
  - { name: a, module: /usr/lib/softhsm/libsofthsm2.so, token_label: a, pin: { file: /nonexistent/hsm-a.pin } }
supervisor: { restart_interval: 5m, restart_jitter: 20%, drain_timeout: 3s, heartbeat_timeout: 4s, ready_timeout: 9s }
)";

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  REQUIRE(pos != std::string::npos);
  return s.replace(pos, from.size(), to);
}

std::string settings_error(const std::string& yaml) {
  try {
    parse_service_settings(yaml, "test.yaml");
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

std::string config_error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "test.yaml");
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the supervisor's settings: listen: and supervisor:, without reading the PIN file") {
  auto s = parse_service_settings(sample);
  REQUIRE(s.unix_listener);
  CHECK(s.unix_listener->path == "/run/hsm-broker/broker.sock");
  CHECK(s.unix_listener->mode == 0600);
  CHECK(s.unix_listener->group == "hsm");
  REQUIRE(s.http_listener);
  CHECK(s.http_listener->address == "127.0.0.1:8200");
  CHECK(s.http_listener->limits.max_connections == 100);
  CHECK(s.restart_interval == std::chrono::minutes(5));
  CHECK(s.restart_jitter == doctest::Approx(0.20));
  CHECK(s.drain_timeout == std::chrono::seconds(3));
  CHECK(s.heartbeat_timeout == std::chrono::seconds(4));
  CHECK(s.ready_timeout == std::chrono::seconds(9));
  // The broker reads the same file, PIN included: that is where a missing PIN file is refused.
  CHECK(config_error_of(sample).find("members[0].pin.file: cannot read /nonexistent/hsm-a.pin") == 0);
}

TEST_CASE("the supervisor refuses its sections as the broker does, with the same message") {
  for (auto [from, to] : {std::pair<std::string, std::string>{"mode: \"0600\"", "mode: \"rw\""},
                          {"restart_jitter: 20%", "restart_jitter: 0.2"},
                          {"drain_timeout: 3s", "drain_timeout: 0s"},
                          {"ready_timeout: 9s", "ready_timout: 9s"},
                          {"address: \"127.0.0.1:8200\"", "address: \"localhost\""},
                          {"max_connections: 100", "max_connections: 100, max_connections_per_peer: 101"},
                          {"  unix: { path: /run/hsm-broker/broker.sock, mode: \"0600\", group: hsm }\n"
                           "  http: { address: \"127.0.0.1:8200\", max_connections: 100 }\n",
                           "  {}\n"}}) {
    CAPTURE(to);
    auto yaml = replace(sample, from, to);
    auto mine = settings_error(yaml);
    CHECK(!mine.empty());
    CHECK(mine == config_error_of(replace(yaml, "file: /nonexistent/hsm-a.pin", "value: \"1234\"")));
  }
  CHECK(settings_error("listen: [").find("test.yaml: not valid YAML") == 0);
  CHECK(settings_error("- a\n") == "config: expected a mapping");
  CHECK(settings_error("members: []\n") == "listen: required");
}

TEST_CASE("listen.http.tls: paths only (the supervisor never opens the key), client_ca optional") {
  auto with = [](const std::string& tls) {
    return replace(sample, "max_connections: 100 }", "max_connections: 100, tls: " + tls + " }");
  };
  auto s = parse_service_settings(with("{ cert: /etc/x/server.crt, key: /nonexistent/server.key, client_ca: /etc/x/ca.crt }"));
  REQUIRE(s.http_listener->tls);
  CHECK(s.http_listener->tls->cert == "/etc/x/server.crt");
  CHECK(s.http_listener->tls->key == "/nonexistent/server.key");
  CHECK(s.http_listener->tls->client_ca == "/etc/x/ca.crt");
  auto plain = parse_service_settings(with("{ cert: /a.crt, key: /a.key }"));
  REQUIRE(plain.http_listener->tls);
  CHECK(plain.http_listener->tls->client_ca.empty());
  CHECK(!parse_service_settings(sample).http_listener->tls);
  CHECK(settings_error(with("{ cert: /a.crt }")) == "listen.http.tls.key: required");
  CHECK(settings_error(with("{ cert: /a.crt, key: /a.key, ca: /b }")) == "listen.http.tls.ca: unknown key");
}
