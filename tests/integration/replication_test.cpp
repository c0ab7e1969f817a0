// Key replication end to end: real brokers, each member a SoftHSM2 token loaded directly through
// the fault-injection module (p11-kit's RPC cannot carry AES key wrap), with members taken down
// and brought back. The cluster key is set up by `hsm-broker --enroll`, as an operator would.
// Also the promises about a member's (re)joining and its workers that need the fault module: the
// known-answer check against a token that signs wrongly, syncing before serving, the repair by
// POST /v1/broker/keys/sync, key generation's exemption from timeouts.call, and recycling one
// member at a time with slow-starting workers.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <thread>
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

const char* fast_health = "health: { probe_interval: 200ms, idle_probe_interval: 200ms }\n";

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
  bool reached = eventually([&] { return member_state(c, name) == state; }, 15s);
  if (!reached) {
    auto r = call(c, "GET", "/v1/broker/members");
    FAIL_CHECK("member " << name << " did not become " << state << ": " << json::serialize(r.body));
  }
  REQUIRE(reached);
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

// What the token holds, read with pkcs11-tool straight from SoftHSM2 (not through the broker, not
// through the fault module): the labels of its objects, one per line.
std::vector<std::string> labels_on(const fault_hsm& h) {
  std::string out;
  int rc = run_command("SOFTHSM2_CONF=" + h.token().conf_path() + " pkcs11-tool --module " + softhsm_token::module_path() +
                           " --token-label " + h.label() + " --login --pin " + h.token().pin() + " --list-objects",
                       &out);
  INFO(out);
  REQUIRE(rc == 0);
  std::vector<std::string> labels;
  static const std::string tag = "label:";
  for (auto pos = out.find(tag); pos != std::string::npos; pos = out.find(tag, pos + 1)) {
    auto start = out.find_first_not_of(' ', pos + tag.size());
    auto end = out.find('\n', start);
    labels.push_back(out.substr(start, end - start));
  }
  return labels;
}

std::size_t count_prefixed(const std::vector<std::string>& labels, const std::string& prefix) {
  return static_cast<std::size_t>(std::count_if(labels.begin(), labels.end(), [&](auto& l) { return l.starts_with(prefix); }));
}

json::object member_info(hsmb::client::broker_client& c, const std::string& name) {
  auto r = call(c, "GET", "/v1/broker/members");
  REQUIRE(r.status == 200);
  for (auto& m : r.data().at("members").as_array())
    if (m.at("name").as_string() == name) return m.as_object();
  FAIL("no member " << name);
  return {};
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
  // Those 404s may come from this broker's memory of the delete. What hsm2 itself holds decides
  // what every other broker sees: a fresh broker on hsm2 alone must not find the key, and hsm2
  // must hold none of its objects (its tombstone record may stay).
  REQUIRE(env.broker->stop() == 0);
  auto left = labels_on(env[1]);
  CHECK_MESSAGE(count_prefixed(left, "hsmb/gone/") == 0, "hsm2 still holds objects of the deleted key");
  broker_process fresh({spec_of("hsm2", env[1])}, fast_health);
  fresh.start();
  auto fc = fresh.unix_client();
  await_state(fc, "hsm2", "serving");
  CHECK(call(fc, "GET", "/v1/transit/keys/gone").status == 404);
  CHECK(call(fc, "POST", "/v1/transit/encrypt/gone", {{"plaintext", b64("x")}}).status == 404);
  auto listed = call(fc, "GET", "/v1/transit/keys?list=true");
  CHECK_MESSAGE(json::serialize(listed.body).find("\"gone\"") == std::string::npos, json::serialize(listed.body));
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
  // hsm2 alone serves the second key: it was copied over while hsm2 was syncing, and its old
  // copy of the first key is never used.
  auto r = call(c, "POST", "/v1/transit/decrypt/reborn", {{"ciphertext", ciphertext}});
  REQUIRE_MESSAGE(r.status == 200, r.error());
  CHECK(unb64(r.data().at("plaintext").as_string()) == "under the second key");
  CHECK(decrypt(c, "reborn", encrypt(c, "reborn", "new on hsm2")) == "new on hsm2");
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

TEST_CASE("a returning member syncing copies every version it missed before it serves") {
  cluster_of env(2);
  auto c = env.broker->unix_client();
  await_state(c, "hsm2", "serving");
  env[1].down();
  await_state(c, "hsm2", "down");
  // Enough missed versions that copying them takes a while (~20 ms each): a member that served
  // first and copied afterwards would be caught with some still missing.
  struct made {
    std::string key;
    int version;
    std::string ciphertext;  // empty for a signing key
  };
  std::vector<made> versions;
  for (int i = 0; i < 6; ++i) {
    auto name = "missed-" + std::to_string(i);
    bool signing = i % 3 == 2;
    REQUIRE(call(c, "POST", "/v1/transit/keys/" + name, {{"type", signing ? "ecdsa-p256" : "aes256-gcm96"}}).status == 200);
    for (int v = 1; v <= 3; ++v) {
      if (v > 1) REQUIRE(call(c, "POST", "/v1/transit/keys/" + name + "/rotate").status == 200);
      versions.push_back({name, v, signing ? "" : encrypt(c, name, name + " v" + std::to_string(v), v)});
    }
  }
  env[1].up();
  // Watch hsm2's state as closely as the API allows; the moment it serves, hsm1 dies: from then
  // on hsm2 alone must serve every version, so it must have held them all when it began to serve.
  std::vector<std::string> states;
  auto deadline = std::chrono::steady_clock::now() + 15s;
  bool serving = false;
  while (!serving && std::chrono::steady_clock::now() < deadline) {
    auto st = member_state(c, "hsm2");
    if (states.empty() || states.back() != st) states.push_back(st);
    serving = st == "serving";
  }
  if (serving) env[0].down();
  std::string seq;
  for (auto& st : states) seq += st + " ";
  INFO("hsm2 went through: " << seq);
  std::string log = env.broker->log_tail(8000);
  INFO("broker log:\n" << log);
  REQUIRE_MESSAGE(serving, "hsm2 did not serve again");
  await_state(c, "hsm1", "down");
  for (auto& m : versions) {
    CAPTURE(m.key);
    CAPTURE(m.version);
    if (!m.ciphertext.empty()) {
      auto r = call(c, "POST", "/v1/transit/decrypt/" + m.key, {{"ciphertext", m.ciphertext}});
      CHECK_MESSAGE(r.status == 200, r.error());
      if (r.status == 200) CHECK(unb64(r.data().at("plaintext").as_string()) == m.key + " v" + std::to_string(m.version));
    } else {
      auto r = call(c, "POST", "/v1/transit/sign/" + m.key, {{"input", b64("m")}, {"key_version", m.version}});
      CHECK_MESSAGE(r.status == 200, r.error());
    }
  }
  MESSAGE("hsm2 on its return: " << seq);
}

TEST_CASE("POST /v1/broker/keys/sync puts back a copy that went missing from a member") {
  cluster_of env(2);
  auto c = env.broker->unix_client();
  await_state(c, "hsm2", "serving");
  REQUIRE(call(c, "POST", "/v1/transit/keys/mended", {{"type", "aes256-gcm96"}}).status == 200);
  auto sealed = encrypt(c, "mended", "sealed before the loss");
  REQUIRE(call(c, "POST", "/v1/transit/keys/mended/rotate").status == 200);
  REQUIRE(call(c, "POST", "/v1/transit/keys/mended-sig", {{"type", "ecdsa-p256"}}).status == 200);
  check_fully_replicated(c, 2, 2);
  // An operator's slip on hsm2: both keys' version 1 deleted behind the broker's back.
  for (auto [type, label] : {std::pair{"secrkey", "hsmb/mended/v1"}, {"privkey", "hsmb/mended-sig/v1"}, {"pubkey", "hsmb/mended-sig/v1"}}) {
    std::string out;
    INFO(out);
    REQUIRE(run_command("SOFTHSM2_CONF=" + env[1].token().conf_path() + " pkcs11-tool --module " + softhsm_token::module_path() +
                            " --token-label " + env[1].label() + " --login --pin " + env[1].token().pin() +
                            " --delete-object --type " + type + " --label " + label,
                        &out) == 0);
  }
  REQUIRE(count_prefixed(labels_on(env[1]), "hsmb/mended/v1") == 1);  // only the HMAC companion is left
  auto drift = call(c, "GET", "/v1/broker/keys/sync");
  REQUIRE(drift.status == 200);
  for (auto key : {"mended", "mended-sig"}) {
    auto& v1 = drift.data().at("keys").at(key).at("versions").at("1");
    INFO(key << ": " << json::serialize(v1));
    CHECK(v1.at("status").as_string() == "missing");
    CHECK(v1.at("members").at("hsm2").at("problem").as_string() == "missing");
  }
  auto repaired = call(c, "POST", "/v1/broker/keys/sync");
  REQUIRE(repaired.status == 200);
  for (auto& [name, key] : repaired.data().at("keys").as_object())
    for (auto& [version, info] : key.at("versions").as_object()) {
      INFO("after the repair, " << std::string(name) << " v" << std::string(version) << ": " << json::serialize(info));
      CHECK(info.at("status").as_string() == "ok");
    }
  check_fully_replicated(c, 2, 2);
  auto held = labels_on(env[1]);
  CHECK(std::count(held.begin(), held.end(), "hsmb/mended/v1") == 1);
  CHECK(std::count(held.begin(), held.end(), "hsmb/mended-sig/v1") == 2);  // private and public key
  std::string out;
  CHECK(run_command(std::string(HSMB_BIN_DIR) + "/hsmctl --socket " + env.broker->socket_path() + " sync", &out) == 0);
  // hsm2 alone serves what was put back.
  env[0].down();
  await_state(c, "hsm1", "down");
  CHECK(decrypt(c, "mended", sealed) == "sealed before the loss");
  auto sig = call(c, "POST", "/v1/transit/sign/mended-sig", {{"input", b64("m")}, {"key_version", 1}});
  REQUIRE_MESSAGE(sig.status == 200, sig.error());
  CHECK(call(c, "POST", "/v1/transit/verify/mended-sig", {{"input", b64("m")}, {"signature", sig.data().at("signature")}})
            .data().at("valid").as_bool());
}

// A token that answers every call but signs wrongly looks healthy to everything but a check of an
// answer: the known-answer check (sign with the canary key, verify in the broker) keeps it out.
TEST_CASE("the known-answer check keeps a member whose token signs wrongly out of service, at start and on its return") {
  fault_hsm h1("ka-1"), h2("ka-2");
  h2.bad_signatures();
  broker_process b({spec_of("hsm1", h1), spec_of("hsm2", h2)}, fast_health);
  b.start();
  auto c = b.unix_client();
  await_state(c, "hsm1", "serving");
  auto refused_for_a_while = [&] {
    // Several probe intervals (retries) and traffic that would reach a serving hsm2.
    auto until = std::chrono::steady_clock::now() + 1200ms;
    auto requests = member_info(c, "hsm2").at("requests");
    while (std::chrono::steady_clock::now() < until) {
      REQUIRE(call(c, "POST", "/v1/transit/random/16").status == 200);
      CHECK(member_state(c, "hsm2") == "down");
    }
    auto m = member_info(c, "hsm2");
    INFO(json::serialize(m));
    CHECK(m.at("state").as_string() == "down");
    CHECK(m.at("last_error").at("code").as_string() == "HSMB_KNOWN_ANSWER_FAILED");
    CHECK(m.at("requests") == requests);
  };
  refused_for_a_while();
  h2.up();
  await_state(c, "hsm2", "serving");
  CHECK(eventually([&] {
    call(c, "POST", "/v1/transit/random/16");
    return member_info(c, "hsm2").at("requests").to_number<int>() > 0;
  }, 10s));
  // Down, then back with a token that signs wrongly: it must not serve again.
  h2.down();
  await_state(c, "hsm2", "down");
  h2.bad_signatures();
  refused_for_a_while();
  h2.up();
  await_state(c, "hsm2", "serving");
}

TEST_CASE("key generation is exempt from timeouts.call: a slow generation is waited for, its worker kept") {
  fault_hsm h("slowgen");
  broker_process b({spec_of("hsm1", h)}, std::string(fast_health) + "timeouts: { request: 5s, call: 300ms }\n");
  b.start();
  auto c = b.unix_client();
  await_state(c, "hsm1", "serving");
  h.slow_key_generation(1000);  // each generation: over three times timeouts.call
  auto started = std::chrono::steady_clock::now();
  auto created = call(c, "POST", "/v1/transit/keys/slow", {{"type", "ecdsa-p256"}});
  auto took = std::chrono::steady_clock::now() - started;
  h.up();
  REQUIRE_MESSAGE(created.status == 200, created.error());
  CHECK(took >= 1s);  // the fault was in effect
  MESSAGE("slow key generation answered after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  auto m = member_info(c, "hsm1");
  INFO(json::serialize(m));
  CHECK(m.at("state").as_string() == "serving");
  CHECK(m.at("worker_restarts").to_number<int>() == 0);
  CHECK(m.at("errors").to_number<int>() == 0);
  CHECK(call(c, "POST", "/v1/transit/sign/slow", {{"input", b64("m")}}).status == 200);
  // The exemption is for generation only: other calls still answer to timeouts.call.
  h.hang();
  auto pending = std::async(std::launch::async, [&] {
    auto own = b.unix_client();
    return call(own, "POST", "/v1/transit/sign/slow", {{"input", b64("m")}}).status;
  });
  bool killed = eventually([&] {
    auto now = member_info(c, "hsm1");
    return now.at("worker_restarts").to_number<int>() >= 1 && now.at("last_error").at("code") == "HSMB_CALL_TIMEOUT";
  }, 1500ms);
  h.up();
  pending.get();
  CHECK_MESSAGE(killed, json::serialize(member_info(c, "hsm1")));
}

// Recycling (recycle.worker_max_age) is make before break, one member at a time. With fresh
// workers that take 0.7 s to log in, two members due at about the same moment would overlap
// unless the second waits for the first.
TEST_CASE("workers are recycled one member at a time, make before break, even when a fresh worker is slow to start") {
  fault_hsm h1("rc-1"), h2("rc-2");
  broker_process b({spec_of("hsm1", h1), spec_of("hsm2", h2)}, std::string(fast_health) + "recycle: { worker_max_age: 2s }\n");
  b.start();
  auto c = b.unix_client();
  await_state(c, "hsm1", "serving");
  await_state(c, "hsm2", "serving");
  h1.slow_login(700);
  h2.slow_login(700);
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> most{0};
  std::thread watch([&] {
    while (!stop) {
      auto n = b.worker_pids().size();  // one worker per member, plus one while a member recycles
      if (n > most) most = n;
      std::this_thread::sleep_for(2ms);  // sampling period
    }
  });
  std::atomic<int> failed{0}, sent{0};
  std::thread load([&] {
    auto own = b.unix_client();
    while (!stop) {
      if (call(own, "POST", "/v1/transit/random/16").status != 200) ++failed;
      ++sent;
      std::this_thread::sleep_for(2ms);  // pacing
    }
  });
  bool recycled = eventually([&] {
    return member_info(c, "hsm1").at("worker_recycles").to_number<int>() >= 2 &&
           member_info(c, "hsm2").at("worker_recycles").to_number<int>() >= 2;
  }, 20s);
  stop = true;
  watch.join();
  load.join();
  h1.up();
  h2.up();
  INFO(b.log_tail(4000));
  REQUIRE(recycled);
  CHECK_MESSAGE(most.load() <= 3, most.load() << " workers at once: two members recycled at the same time");
  CHECK_MESSAGE(most.load() == 3, "the fresh worker must run before the old one goes");
  CHECK(failed == 0);
  CHECK(sent > 100);
  for (auto name : {"hsm1", "hsm2"}) {
    auto m = member_info(c, name);
    INFO(json::serialize(m));
    CHECK(m.at("worker_restarts").to_number<int>() == 0);
    CHECK(m.at("errors").to_number<int>() == 0);
  }
}
