// The drift report: where each key version's copies are, with fingerprints that match for copies
// of one key and differ between keys.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fstream>
#include <map>

#include "tests/integration/broker_fixture.h"

using namespace hsmb::test;
namespace json = boost::json;

namespace {

struct two_local_members {
  softhsm_token a{"local-a"}, b{"local-b"};
  std::unique_ptr<broker_process> broker;
  two_local_members() {
    broker = std::make_unique<broker_process>(std::vector<member_spec>{
        {"a", softhsm_token::module_path(), a.label(), a.pin(), {{"SOFTHSM2_CONF", a.conf_path()}}},
        {"b", softhsm_token::module_path(), b.label(), b.pin(), {{"SOFTHSM2_CONF", b.conf_path()}}}});
    broker->start();
  }
};

}  // namespace

TEST_CASE("the drift report shows each version's copies and fingerprints") {
  two_local_members env;
  auto c = env.broker->unix_client();
  REQUIRE(eventually([&] { return call(c, "GET", "/v1/sys/health").body.at("members").at("serving").to_number<int>() == 2; },
                     std::chrono::seconds(10)));
  for (auto [name, type] : {std::pair{"sym", "aes256-gcm96"}, {"sym2", "aes256-gcm96"}, {"mac", "hmac"}, {"ec", "ecdsa-p256"}})
    REQUIRE(call(c, "POST", std::string("/v1/transit/keys/") + name, {{"type", type}}).status == 200);
  REQUIRE(call(c, "POST", "/v1/transit/keys/sym/rotate").status == 200);

  auto report = call(c, "GET", "/v1/broker/keys/sync");
  REQUIRE(report.status == 200);
  auto& keys = report.data().at("keys").as_object();
  REQUIRE(keys.size() == 4);
  CHECK(keys.at("sym").at("versions").as_object().size() == 2);

  // These members were never enrolled (no cluster key), so a key stays on one: the other is reported missing.
  auto& v1 = keys.at("sym2").at("versions").at("1");
  CHECK(v1.at("status").as_string() == "missing");
  int present = 0, missing = 0;
  std::string sym2_print;
  for (auto& [member, copy] : v1.at("members").as_object()) {
    if (auto* fp = copy.as_object().if_contains("fingerprint")) {
      ++present;
      sym2_print = std::string(fp->as_string());
    } else {
      CHECK(copy.at("problem").as_string() == "missing");
      ++missing;
    }
  }
  CHECK(present == 1);
  CHECK(missing == 1);
  CHECK(sym2_print.size() == 32);

  // Deterministic, and different between keys.
  auto again = call(c, "GET", "/v1/broker/keys/sync");
  CHECK(again.data().at("keys").at("sym2") == keys.at("sym2"));
  auto fingerprint_of = [&](const char* key) {
    for (auto& [member, copy] : keys.at(key).at("versions").at("1").at("members").as_object())
      if (auto* fp = copy.as_object().if_contains("fingerprint")) return std::string(fp->as_string());
    return std::string();
  };
  CHECK(fingerprint_of("sym") != sym2_print);
  CHECK(fingerprint_of("mac").size() == 32);

  // An asymmetric key's fingerprint is the SHA-256 of its SubjectPublicKeyInfo.
  auto info = call(c, "GET", "/v1/transit/keys/ec");
  auto pem_path = env.broker->dir() + "/ec.pem";
  std::ofstream(pem_path) << std::string(info.data().at("keys").at("1").at("public_key").as_string());
  std::string digest;
  REQUIRE(run_command("openssl pkey -pubin -in " + pem_path + " -outform DER | sha256sum", &digest) == 0);
  CHECK(digest.substr(0, 32) == fingerprint_of("ec"));

  std::string out;
  CHECK(run_command(std::string(HSMB_BIN_DIR) + "/hsmctl --socket " + env.broker->socket_path() + " sync", &out) == 1);
  CHECK(out.find("(missing)") != std::string::npos);
  CHECK(out.find(sym2_print) != std::string::npos);
}

TEST_CASE("replication: none routes every key to every member (the HSMs synchronise themselves)") {
  // Two members on one token stand in for an HSM cluster that copies keys between its nodes.
  softhsm_token shared("cluster");
  std::vector<member_spec> members;
  for (auto name : {"node1", "node2"})
    members.push_back({name, softhsm_token::module_path(), shared.label(), shared.pin(), {{"SOFTHSM2_CONF", shared.conf_path()}}});
  broker_process b(members, "replication: { mode: none }");
  b.start();
  auto c = b.unix_client();
  REQUIRE(eventually([&] { return call(c, "GET", "/v1/sys/health").body.at("members").at("serving").to_number<int>() == 2; },
                     std::chrono::seconds(10)));
  // Two workers starting on one token at once (canary, login) is what a cluster's nodes do: no
  // error is excused, from start-up on.
  REQUIRE(call(c, "POST", "/v1/transit/keys/k", {{"type", "ecdsa-p256"}}).status == 200);
  for (int i = 0; i < 200; ++i) REQUIRE(call(c, "POST", "/v1/transit/sign/k", {{"input", b64("m")}}).status == 200);
  REQUIRE(call(c, "POST", "/v1/transit/keys/k/rotate").status == 200);
  REQUIRE(call(c, "POST", "/v1/transit/sign/k", {{"input", b64("m")}}).status == 200);
  auto reply = call(c, "GET", "/v1/broker/members");
  for (auto& m : reply.data().at("members").as_array()) {
    CAPTURE(m.at("name").as_string());
    CAPTURE(json::serialize(m));
    CHECK(m.at("requests").to_number<int>() > 20);  // both serve it, though only one created it
    CHECK(m.at("errors").to_number<int>() == 0);
    CHECK(m.at("worker_restarts").to_number<int>() == 0);
    CHECK(m.at("state").as_string() == "serving");
  }
}

TEST_CASE("a copy that is a different key is reported as a mismatch and never used") {
  softhsm_token a("mm-a"), b("mm-b");
  member_spec ma{"a", softhsm_token::module_path(), a.label(), a.pin(), {{"SOFTHSM2_CONF", a.conf_path()}}};
  member_spec mb{"b", softhsm_token::module_path(), b.label(), b.pin(), {{"SOFTHSM2_CONF", b.conf_path()}}};
  // Each token gets its own "k" behind the broker's back: same name, different key material.
  for (auto& spec : {ma, mb}) {
    broker_process one({spec});
    one.start();
    auto c = one.unix_client();
    REQUIRE(call(c, "POST", "/v1/transit/keys/k", {{"type", "ecdsa-p256"}}).status == 200);
  }
  broker_process both({ma, mb});
  both.start();
  auto c = both.unix_client();
  REQUIRE(eventually([&] { return call(c, "GET", "/v1/sys/health").body.at("members").at("serving").to_number<int>() == 2; },
                     std::chrono::seconds(10)));

  auto report = call(c, "GET", "/v1/broker/keys/sync");
  auto& v1 = report.data().at("keys").at("k").at("versions").at("1");
  CHECK(v1.at("status").as_string() == "mismatch");
  int flagged = 0;
  for (auto& [member, copy] : v1.at("members").as_object())
    if (auto* p = copy.as_object().if_contains("problem"); p && std::string_view(p->as_string()).starts_with("mismatch")) ++flagged;
  CHECK(flagged == 1);

  // Every signature comes from the recorded key: the other copy is never routed to.
  for (int i = 0; i < 60; ++i) {
    auto s = call(c, "POST", "/v1/transit/sign/k", {{"input", b64("m" + std::to_string(i))}});
    REQUIRE(s.status == 200);
    auto v = call(c, "POST", "/v1/transit/verify/k", {{"input", b64("m" + std::to_string(i))}, {"signature", s.data().at("signature")}});
    CHECK(v.data().at("valid").as_bool());
  }
}

TEST_CASE("a key or version made by another broker (a hand-off's other generation) is found on first use") {
  softhsm_token t("shared-by-two");
  member_spec m{"hsm", softhsm_token::module_path(), t.label(), t.pin(), {{"SOFTHSM2_CONF", t.conf_path()}}};
  broker_process old_generation({m}), new_generation({m});
  new_generation.start();  // loads its catalog now: the key does not exist yet
  old_generation.start();
  auto a = old_generation.unix_client(), b = new_generation.unix_client();
  REQUIRE(call(a, "POST", "/v1/transit/keys/late", {{"type", "aes256-gcm96"}}).status == 200);
  auto sealed = call(b, "POST", "/v1/transit/encrypt/late", {{"plaintext", b64("made by b")}});
  REQUIRE(sealed.status == 200);
  REQUIRE(call(a, "POST", "/v1/transit/keys/late/rotate").status == 200);
  auto v2 = call(a, "POST", "/v1/transit/encrypt/late", {{"plaintext", b64("v2 by a")}});
  REQUIRE(v2.status == 200);
  auto opened = call(b, "POST", "/v1/transit/decrypt/late", {{"ciphertext", v2.data().at("ciphertext")}});
  REQUIRE(opened.status == 200);
  CHECK(unb64(opened.data().at("plaintext").as_string()) == "v2 by a");
  CHECK(call(b, "GET", "/v1/transit/keys/late").data().at("latest_version").to_number<int>() == 2);
  CHECK(call(b, "GET", "/v1/transit/keys/never-made").status == 404);
}
