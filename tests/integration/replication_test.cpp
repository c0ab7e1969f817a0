// Key replication end to end: real brokers, each member a SoftHSM2 token loaded directly through
// the fault-injection module (p11-kit's RPC cannot carry AES key wrap), with members taken down
// and brought back. The cluster key is set up by `hsm-broker --enroll`, as an operator would.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fstream>
#include <future>

#include "tests/integration/broker_fixture.h"
#include "tests/lib/fault_hsm.h"

using namespace hsmb::test;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

member_spec spec_of(const std::string& name, const fault_hsm& h) {
  member_spec s{name, fault_hsm::module_path(), h.label(), h.token().pin(), {}};
  for (auto& [k, v] : h.environment()) s.env[k] = v;
  return s;
}

const char* fast_health = "health: { probe_interval: 200ms }\n";

std::string so_pin_file(const broker_process& b, const fault_hsm& h) {
  auto path = b.dir() + "/so.pin";
  std::ofstream(path) << h.token().so_pin() << "\n";
  return path;
}

// Runs the ceremony for the broker's configuration; returns its output, failing the test on error.
std::string enroll(const broker_process& b, const fault_hsm& any) {
  std::string out;
  int rc = run_command(std::string(HSMB_BIN_DIR) + "/hsm-broker --config " + b.config_path() + " --enroll --so-pin-file " +
                           so_pin_file(b, any),
                       &out);
  INFO(out);
  REQUIRE(rc == 0);
  return out;
}

std::string member_state(hsmb::client::broker_client& c, const std::string& name) {
  auto r = call(c, "GET", "/v1/broker/members");
  if (r.status != 200) return "?";
  for (auto& m : r.data().at("members").as_array())
    if (m.at("name").as_string() == name) return std::string(m.at("state").as_string());
  return "?";
}

void await_state(hsmb::client::broker_client& c, const std::string& name, const std::string& state) {
  INFO("member " << name << " should become " << state);
  REQUIRE(eventually([&] { return member_state(c, name) == state; }, 15s));
}

std::string encrypt(hsmb::client::broker_client& c, const std::string& key, const std::string& text, int version = 0) {
  json::object body{{"plaintext", b64(text)}};
  if (version) body["key_version"] = version;
  auto r = call(c, "POST", "/v1/transit/encrypt/" + key, body);
  INFO(r.error());
  REQUIRE(r.status == 200);
  return std::string(r.data().at("ciphertext").as_string());
}

std::string decrypt(hsmb::client::broker_client& c, const std::string& key, const std::string& ciphertext) {
  auto r = call(c, "POST", "/v1/transit/decrypt/" + key, {{"ciphertext", ciphertext}});
  INFO(r.error());
  REQUIRE(r.status == 200);
  return unb64(r.data().at("plaintext").as_string());
}

// Every live version of every key is on every member, with one fingerprint.
void check_fully_replicated(hsmb::client::broker_client& c, std::size_t members, std::size_t keys) {
  auto report = call(c, "GET", "/v1/broker/keys/sync");
  REQUIRE(report.status == 200);
  REQUIRE(report.data().at("keys").as_object().size() == keys);
  for (auto& [name, key] : report.data().at("keys").as_object())
    for (auto& [version, info] : key.at("versions").as_object()) {
      INFO("key " << std::string(name) << " v" << std::string(version) << ": " << json::serialize(info));
      CHECK(info.at("status").as_string() == "ok");
      CHECK(info.at("members").as_object().size() == members);
    }
}

struct cluster_of {
  std::vector<std::unique_ptr<fault_hsm>> hsms;
  std::unique_ptr<broker_process> broker;
  explicit cluster_of(int n, std::string extra = "") {
    std::vector<member_spec> specs;
    for (int i = 1; i <= n; ++i) {
      hsms.push_back(std::make_unique<fault_hsm>("rep-" + std::to_string(i)));
      specs.push_back(spec_of("hsm" + std::to_string(i), *hsms.back()));
    }
    broker = std::make_unique<broker_process>(specs, fast_health + extra);
    enroll(*broker, *hsms[0]);
    broker->start();
  }
  fault_hsm& operator[](std::size_t i) { return *hsms[i]; }
};

}  // namespace

TEST_CASE("enrollment makes one cluster key and carries it to the other member; a second run changes nothing") {
  fault_hsm h1("en-1"), h2("en-2");
  broker_process b({spec_of("hsm1", h1), spec_of("hsm2", h2)});
  auto first = enroll(b, h1);
  CHECK(first.find("hsm1: cluster key created") != std::string::npos);
  CHECK(first.find("hsm2: cluster key carried from hsm1") != std::string::npos);
  auto again = enroll(b, h1);
  CHECK(again.find("created") == std::string::npos);
  CHECK(again.find("hsm2: already holds the cluster key") != std::string::npos);
}

TEST_CASE("keys made while HSM2 was down reach it when it returns; then HSM2 alone serves them") {
  cluster_of env(2);
  auto c = env.broker->unix_client();
  await_state(c, "hsm2", "serving");
  env[1].down();
  await_state(c, "hsm2", "down");

  REQUIRE(call(c, "POST", "/v1/transit/keys/orders", {{"type", "aes256-gcm96"}}).status == 200);
  REQUIRE(call(c, "POST", "/v1/transit/keys/invoices", {{"type", "ecdsa-p256"}}).status == 200);
  REQUIRE(call(c, "POST", "/v1/transit/keys/tags", {{"type", "hmac"}}).status == 200);
  auto v1 = encrypt(c, "orders", "made on hsm1, v1");
  REQUIRE(call(c, "POST", "/v1/transit/keys/orders/rotate").status == 200);
  auto v2 = encrypt(c, "orders", "made on hsm1, v2");
  CHECK(v2.starts_with("vault:v2:"));
  auto mac = call(c, "POST", "/v1/transit/hmac/tags", {{"input", b64("m")}});
  REQUIRE(mac.status == 200);

  env[1].up();
  await_state(c, "hsm2", "serving");  // through syncing: it receives what it missed first
  check_fully_replicated(c, 2, 3);

  env[0].down();
  await_state(c, "hsm1", "down");
  CHECK(decrypt(c, "orders", v1) == "made on hsm1, v1");
  CHECK(decrypt(c, "orders", v2) == "made on hsm1, v2");
  auto sig = call(c, "POST", "/v1/transit/sign/invoices", {{"input", b64("invoice 42")}});
  REQUIRE(sig.status == 200);
  auto ok = call(c, "POST", "/v1/transit/verify/invoices", {{"input", b64("invoice 42")}, {"signature", sig.data().at("signature")}});
  CHECK(ok.data().at("valid").as_bool());
  auto mac2 = call(c, "POST", "/v1/transit/hmac/tags", {{"input", b64("m")}});
  REQUIRE(mac2.status == 200);
  CHECK(mac2.data().at("hmac") == mac.data().at("hmac"));
  // hsm2 holds v2 now, so encryption with the latest version works with hsm1 gone.
  CHECK(decrypt(c, "orders", encrypt(c, "orders", "made on hsm2")) == "made on hsm2");
}

TEST_CASE("with min_copies 2 and one member down, a create fails cleanly and leaves no key behind") {
  cluster_of env(2, "replication: { mode: broker, min_copies: 2 }\n");
  auto c = env.broker->unix_client();
  await_state(c, "hsm2", "serving");
  env[1].down();
  await_state(c, "hsm2", "down");
  auto r = call(c, "POST", "/v1/transit/keys/half", {{"type", "aes256-gcm96"}});
  CHECK(r.status == 503);
  CHECK(r.error().find("min_copies requires 2") != std::string::npos);
  CHECK(call(c, "GET", "/v1/transit/keys/half").status == 404);
  env[1].up();
  await_state(c, "hsm2", "serving");
  CHECK(call(c, "GET", "/v1/transit/keys/half").status == 404);  // nothing half-made came back
  REQUIRE(call(c, "POST", "/v1/transit/keys/half", {{"type", "aes256-gcm96"}}).status == 200);
  check_fully_replicated(c, 2, 1);
}

TEST_CASE("a key deleted while a member was down stays deleted when it returns") {
  cluster_of env(2);
  auto c = env.broker->unix_client();
  await_state(c, "hsm2", "serving");
  REQUIRE(call(c, "POST", "/v1/transit/keys/gone", {{"type", "aes256-gcm96"}}).status == 200);
  REQUIRE(call(c, "POST", "/v1/transit/keys/gone/config", {{"deletion_allowed", true}}).status == 200);
  env[1].down();
  await_state(c, "hsm2", "down");
  REQUIRE(call(c, "DELETE", "/v1/transit/keys/gone").status == 204);
  env[1].up();
  await_state(c, "hsm2", "serving");
  env[0].down();
  await_state(c, "hsm1", "down");
  CHECK(call(c, "GET", "/v1/transit/keys/gone").status == 404);
  CHECK(call(c, "POST", "/v1/transit/encrypt/gone", {{"plaintext", b64("x")}}).status == 404);
}

TEST_CASE("a name deleted and made again while a member was down is never served from that member's old copy") {
  cluster_of env(2);
  auto c = env.broker->unix_client();
  await_state(c, "hsm2", "serving");
  REQUIRE(call(c, "POST", "/v1/transit/keys/reborn", {{"type", "aes256-gcm96"}}).status == 200);
  REQUIRE(call(c, "POST", "/v1/transit/keys/reborn/config", {{"deletion_allowed", true}}).status == 200);
  encrypt(c, "reborn", "under the first key");  // both members have now checked their copy of v1
  env[1].down();
  await_state(c, "hsm2", "down");
  REQUIRE(call(c, "DELETE", "/v1/transit/keys/reborn").status == 204);
  REQUIRE(call(c, "POST", "/v1/transit/keys/reborn", {{"type", "aes256-gcm96"}}).status == 200);
  auto ciphertext = encrypt(c, "reborn", "under the second key");
  env[1].up();
  await_state(c, "hsm2", "serving");
  env[0].down();
  await_state(c, "hsm1", "down");
  // hsm2 alone: the second key (copied over) or a clear refusal, never the first key's material.
  auto r = call(c, "POST", "/v1/transit/decrypt/reborn", {{"ciphertext", ciphertext}});
  if (r.status == 200) CHECK(unb64(r.data().at("plaintext").as_string()) == "under the second key");
  else CHECK_MESSAGE(r.status == 503, r.error());
}

TEST_CASE("a new, empty member added to the configuration receives every key before it serves") {
  fault_hsm h1("new-1"), h2("new-2"), h3("new-3");
  std::string ciphertext, signature;
  {
    broker_process first({spec_of("hsm1", h1), spec_of("hsm2", h2)}, fast_health);
    enroll(first, h1);
    first.start();
    auto c = first.unix_client();
    await_state(c, "hsm2", "serving");
    REQUIRE(call(c, "POST", "/v1/transit/keys/ledger", {{"type", "aes256-gcm96"}}).status == 200);
    REQUIRE(call(c, "POST", "/v1/transit/keys/ledger/rotate").status == 200);
    REQUIRE(call(c, "POST", "/v1/transit/keys/stamp", {{"type", "rsa-2048"}}).status == 200);
    ciphertext = encrypt(c, "ledger", "old entry", 1);
    auto s = call(c, "POST", "/v1/transit/sign/stamp", {{"input", b64("doc")}});
    REQUIRE(s.status == 200);
    signature = std::string(s.data().at("signature").as_string());
  }
  broker_process grown({spec_of("hsm1", h1), spec_of("hsm2", h2), spec_of("hsm3", h3)}, fast_health);
  auto out = enroll(grown, h1);
  CHECK(out.find("hsm3: cluster key carried") != std::string::npos);
  grown.start();
  auto c = grown.unix_client();
  await_state(c, "hsm1", "serving");
  await_state(c, "hsm2", "serving");
  await_state(c, "hsm3", "serving");
  check_fully_replicated(c, 3, 2);
  h1.down();
  h2.down();
  await_state(c, "hsm1", "down");
  await_state(c, "hsm2", "down");
  CHECK(decrypt(c, "ledger", ciphertext) == "old entry");
  CHECK(decrypt(c, "ledger", encrypt(c, "ledger", "new entry")) == "new entry");
  auto ok = call(c, "POST", "/v1/transit/verify/stamp", {{"input", b64("doc")}, {"signature", signature}});
  CHECK(ok.data().at("valid").as_bool());
  CHECK(call(c, "POST", "/v1/transit/sign/stamp", {{"input", b64("doc")}}).status == 200);
}

TEST_CASE("two brokers creating one key name at the same moment end with exactly one key on every member") {
  fault_hsm h1("dup-1"), h2("dup-2");
  broker_process a({spec_of("hsm1", h1), spec_of("hsm2", h2)}, fast_health);
  enroll(a, h1);
  broker_process b({spec_of("hsm1", h1), spec_of("hsm2", h2)}, fast_health);
  a.start();
  b.start();
  auto ca = a.unix_client(), cb = b.unix_client();
  await_state(ca, "hsm2", "serving");
  await_state(cb, "hsm2", "serving");
  for (int round = 0; round < 5; ++round) {
    auto name = "race-" + std::to_string(round);
    auto create = [&](hsmb::client::broker_client& c) {
      auto r = call(c, "POST", "/v1/transit/keys/" + name, {{"type", "ecdsa-p256"}});
      if (r.status != 200) MESSAGE(r.error());
      return r.status;
    };
    auto fa = std::async(std::launch::async, [&] { return create(ca); });
    auto fb = std::async(std::launch::async, [&] { return create(cb); });
    CHECK(fa.get() == 200);
    CHECK(fb.get() == 200);
    auto ka = call(ca, "GET", "/v1/transit/keys/" + name), kb = call(cb, "GET", "/v1/transit/keys/" + name);
    INFO("broker a:\n" << a.log_tail(6000) << "\nbroker b:\n" << b.log_tail(6000));
    CHECK(ka.data().at("keys").at("1").at("public_key") == kb.data().at("keys").at("1").at("public_key"));
    // A signature from one broker verifies with the other's view of the key.
    auto sig = call(ca, "POST", "/v1/transit/sign/" + name, {{"input", b64("x")}});
    auto ok = call(cb, "POST", "/v1/transit/verify/" + name, {{"input", b64("x")}, {"signature", sig.data().at("signature")}});
    CHECK(ok.data().at("valid").as_bool());
  }
  // On each token: one private key object per key name and version.
  for (auto* h : {&h1, &h2}) {
    std::string out;
    REQUIRE(run_command("SOFTHSM2_CONF=" + h->token().conf_path() + " pkcs11-tool --module " +
                            softhsm_token::module_path() + " --token-label " + h->label() + " --login --pin " +
                            h->token().pin() + " --list-objects --type privkey",
                        &out) == 0);
    for (int round = 0; round < 5; ++round) {
      std::string label = "label:      hsmb/race-" + std::to_string(round) + "/v1\n";
      std::size_t count = 0;
      for (auto pos = out.find(label); pos != std::string::npos; pos = out.find(label, pos + 1)) ++count;
      INFO(h->label() << " race-" << round << "\n" << out);
      CHECK(count == 1);
    }
  }
}
