// Config parsing: the contract's example loads; every mistake names its key path.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "broker/config.h"

using namespace hsmb;

namespace {

const std::string good = R"(
state_dir: /var/lib/hsm-broker
listen:
  unix: { path: /run/hsm-broker/broker.sock, mode: "0660" }
  http: { address: "127.0.0.1:8200" }
members:
  - name: hsm-a
    module: /usr/lib/softhsm/libsofthsm2.so
    token_label: hsm-a
    pin: { value: "1234" }
    env: { SOFTHSM2_CONF: /etc/hsm-broker/hsm-a.conf }
    sessions: 4
  - name: hsm-b
    module: /usr/lib/softhsm/libsofthsm2.so
    slot: 7
    pin: { env: HSMB_TEST_PIN }
replication: { mode: broker, min_copies: 2 }
timeouts: { request: 5s, call: 2s }
health: { probe_interval: 1s }
supervisor: { restart_interval: 1h, restart_jitter: 10%, drain_timeout: 30s }
recycle: { worker_max_age: 30m }
)";

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "test.yaml");
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  REQUIRE(pos != std::string::npos);
  return s.replace(pos, from.size(), to);
}

}  // namespace

TEST_CASE("the contract's example configuration loads") {
  ::setenv("HSMB_TEST_PIN", "5678", 1);
  auto c = parse_config(good);
  CHECK(c.state_dir == "/var/lib/hsm-broker");
  REQUIRE(c.unix_listener);
  CHECK(c.unix_listener->path == "/run/hsm-broker/broker.sock");
  CHECK(c.unix_listener->mode == 0660);
  REQUIRE(c.http_listener);
  CHECK(c.http_listener->address == "127.0.0.1:8200");
  REQUIRE(c.members.size() == 2);
  CHECK(c.members[0].token_label == "hsm-a");
  CHECK(std::string(c.members[0].pin.c_str()) == "1234");
  CHECK(c.members[0].env.at("SOFTHSM2_CONF") == "/etc/hsm-broker/hsm-a.conf");
  CHECK(c.members[1].slot == 7u);
  CHECK(std::string(c.members[1].pin.c_str()) == "5678");
  CHECK(c.members[1].sessions == 4u);
  CHECK(c.min_copies == 2u);
  CHECK(c.request_timeout == std::chrono::seconds(5));
  CHECK(c.call_timeout == std::chrono::seconds(2));
  CHECK(c.restart_interval == std::chrono::hours(1));
  CHECK(c.restart_jitter == doctest::Approx(0.10));
  CHECK(c.worker_max_age == std::chrono::minutes(30));
}

TEST_CASE("health: idle probes and the back-off cap, with defaults a fleet can afford") {
  ::setenv("HSMB_TEST_PIN", "5678", 1);
  auto d = parse_config(good);
  CHECK(d.idle_probe_interval == std::chrono::seconds(30));
  CHECK(d.max_backoff == std::chrono::seconds(30));
  auto c = parse_config(replace(good, "health: { probe_interval: 1s }",
                                "health: { probe_interval: 2s, idle_probe_interval: 1m, max_backoff: 10s }"));
  CHECK(c.idle_probe_interval == std::chrono::minutes(1));
  CHECK(c.max_backoff == std::chrono::seconds(10));
  CHECK(error_of(replace(good, "health: { probe_interval: 1s }", "health: { probe_interval: 2s, max_backoff: 1s }"))
            .find("health.max_backoff: must be at least probe_interval") != std::string::npos);
  auto slow = parse_config(replace(good, "health: { probe_interval: 1s }", "health: { probe_interval: 1m }"));
  CHECK(slow.max_backoff == std::chrono::minutes(1));  // never below the first retry
}

TEST_CASE("connection caps: per listener, per peer (a uid gets half of the Unix socket's by default)") {
  ::setenv("HSMB_TEST_PIN", "5678", 1);
  auto d = parse_config(good);
  REQUIRE(d.unix_listener);
  CHECK(d.unix_listener->limits.max_connections == 1024);
  CHECK(d.unix_listener->limits.max_connections_per_peer == 512);
  CHECK(d.http_listener->limits.max_connections_per_peer == 1024);  // loopback: every client is 127.0.0.1
  CHECK(d.max_batch_items == 1000);
  auto c = parse_config(replace(good, R"(http: { address: "127.0.0.1:8200" })",
                                R"(http: { address: "127.0.0.1:8200", max_connections: 100, max_connections_per_peer: 10, allowed_hosts: [broker.internal], allowed_origins: ["https://ui.example"] })"));
  CHECK(c.http_listener->limits.max_connections == 100);
  CHECK(c.http_listener->limits.max_connections_per_peer == 10);
  CHECK(c.http_listener->allowed_hosts == std::vector<std::string>{"broker.internal"});
  CHECK(c.http_listener->allowed_origins == std::vector<std::string>{"https://ui.example"});
  CHECK(error_of(replace(good, R"(http: { address: "127.0.0.1:8200" })",
                         R"(http: { address: "127.0.0.1:8200", max_connections: 10, max_connections_per_peer: 20 })"))
            .find("max_connections_per_peer: larger than max_connections") != std::string::npos);
  CHECK(error_of(good + "limits: { max_batch_items: 0 }\n").find("limits.max_batch_items") != std::string::npos);
}

TEST_CASE("a PIN file is read and its trailing newline dropped") {
  std::string path = "/tmp/hsmb-config-test-pin-" + std::to_string(::getpid());
  std::ofstream(path) << "4321\n";
  auto c = parse_config(replace(good, R"(pin: { value: "1234" })", "pin: { file: " + path + " }"));
  CHECK(std::string(c.members[0].pin.c_str()) == "4321");
  std::ofstream(path) << "4321\r\n\n";  // CRLF and blank lines at the end go too
  CHECK(std::string(parse_config(replace(good, R"(pin: { value: "1234" })", "pin: { file: " + path + " }")).members[0].pin.c_str()) == "4321");
  std::ofstream(path) << std::string(5000, '7');  // not a PIN: a wrong file
  CHECK(error_of(replace(good, R"(pin: { value: "1234" })", "pin: { file: " + path + " }")).find("larger than a PIN") !=
        std::string::npos);
  std::remove(path.c_str());
  CHECK(error_of(replace(good, R"(pin: { value: "1234" })", "pin: { file: " + path + " }")).find("No such file") !=
        std::string::npos);
}

TEST_CASE("errors name the key path") {
  ::setenv("HSMB_TEST_PIN", "5678", 1);
  CHECK(error_of(replace(good, "state_dir:", "statedir:")) == "statedir: unknown key");
  CHECK(error_of(replace(good, "sessions: 4", "sessions: many")) ==
        "members[0].sessions: expected a whole number, got \"many\"");
  CHECK(error_of(replace(good, "sessions: 4", "sessions: 0")) == "members[0].sessions: must be between 1 and 64");
  CHECK(error_of(replace(good, "request: 5s", "request: 5 seconds")) ==
        "timeouts.request: expected a duration like 250ms, 2s, 5m or 1h, got \"5 seconds\"");
  CHECK(error_of(replace(good, "mode: broker", "mode: magic")) == "replication.mode: expected broker or none, got \"magic\"");
  CHECK(error_of(replace(good, "slot: 7", "slot: 7\n    token_label: x")) == "members[1]: give exactly one of token_label or slot");
  CHECK(error_of(replace(good, "name: hsm-b", "name: hsm-a")) == "members[1].name: duplicate member name \"hsm-a\"");
  CHECK(error_of(replace(good, "mode: \"0660\"", "mode: \"rw\"")) ==
        "listen.unix.mode: expected an octal mode like \"0660\", got \"rw\"");
  CHECK(error_of(replace(good, "restart_jitter: 10%", "restart_jitter: 0.1")) ==
        "supervisor.restart_jitter: expected a percentage below 100 like 10%, got \"0.1\"");
  CHECK(error_of(replace(good, "min_copies: 2", "min_copies: 3")) == "replication.min_copies: larger than the number of members");
  CHECK(error_of(replace(good, "call: 2s", "call: 9s")) == "timeouts.call: must not be longer than timeouts.request");
  CHECK(error_of(replace(good, "  http: { address: \"127.0.0.1:8200\" }", "  http: { address: \"localhost\" }")) ==
        "listen.http.address: expected host:port, got \"localhost\"");
}

TEST_CASE("missing sections and bad PIN sources are reported") {
  CHECK(error_of("listen: { unix: { path: /tmp/x.sock } }") == "members: required: at least one member");
  CHECK(error_of("members: []\nlisten: { unix: { path: /tmp/x.sock } }") == "members: at least one member is required");
  CHECK(error_of("listen: {}\nmembers: []").starts_with("listen: give at least one of unix or http"));
  ::unsetenv("HSMB_TEST_PIN");
  CHECK(error_of(good) == "members[1].pin.env: environment variable HSMB_TEST_PIN is not set");
  CHECK(error_of(replace(good, R"(pin: { value: "1234" })", "pin: { file: /nonexistent/pin }"))
            .starts_with("members[0].pin.file: cannot read /nonexistent/pin"));
  CHECK(error_of(replace(good, R"(pin: { value: "1234" })", R"(pin: { value: "1", env: X })")) ==
        "members[0].pin: give exactly one of file, env or value");
  CHECK(error_of("{ not yaml").starts_with("test.yaml: not valid YAML"));
  CHECK(error_of("- a\n- b") == "config: expected a mapping");
}

TEST_CASE("PINs never appear in error messages") {
  auto e = error_of(replace(good, R"(pin: { value: "1234" })", R"(pin: { value: "s3cr3t-pin", extra: 1 })"));
  CHECK(e == "members[0].pin.extra: unknown key");
  CHECK(e.find("s3cr3t") == std::string::npos);
}
