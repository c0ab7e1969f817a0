// The audit trail end to end (README "Audit"): a real broker on a SoftHSM2 token writes two lines
// per request, no plaintext, data key, ciphertext or token in clear; sys/audit-hash gives the
// logged value; hsmctl audit verify finds an edited line; fail_closed refuses what it cannot log.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "api/auth/authenticator.h"
#include "common/base64.h"
#include "tests/integration/broker_fixture.h"
#include "tests/integration/token_binding.h"
#include "tests/lib/temp_dir.h"

using namespace hsmb::test;
namespace json = boost::json;
namespace fs = std::filesystem;

using hsmb::test::read_lines;
using hsmb::test::temp_dir;

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct run_result {
  int code;
  std::string out;
};

run_result run(const std::string& command) {
  run_result r{-1, ""};
  r.code = run_command(command, &r.out);
  return r;
}

std::string hsmctl() { return std::string(HSMB_BIN_DIR) + "/hsmctl"; }

std::string str(const json::value& v) { return v.is_string() ? std::string(v.get_string()) : json::serialize(v); }

std::string hex_of(std::string_view b64text) {
  auto raw = hsmb::base64_decode(b64text);
  return raw ? hsmb::hex_encode(*raw) : "";
}

std::string text_hex(std::string_view s) { return hsmb::hex_encode(hsmb::as_bytes(s)); }

json_reply post(hsmb::client::broker_client& c, const std::string& path, const json::object& body, std::string_view token = {}) {
  auto r = c.request("POST", path, json::serialize(body), token);
  json_reply out{r.status, nullptr};
  boost::system::error_code ec;
  if (!r.body.empty()) out.body = json::parse(r.body, ec);
  return out;
}

}  // namespace

TEST_CASE("every request writes a request and a response line; secrets are only hashes; audit-hash and verify agree") {
  temp_dir dir;
  auto log = dir.path / "audit.log";
  single_member_broker b("audit: { file: " + log.string() + ", fail_closed: true }\n");
  auto c = b.broker->unix_client();
  const std::string token = "hvs.secret-token-never-logged";
  CHECK(b.broker->log_tail(1 << 20).find("no auth section: every caller") != std::string::npos);  // DESIGN: a warning at start

  REQUIRE(call(c, "POST", "/v1/transit/keys/k", {{"type", "aes256-gcm96"}}).status == 200);
  REQUIRE(call(c, "POST", "/v1/transit/keys/s", {{"type", "ecdsa-p256"}}).status == 200);
  std::vector<std::string> secrets;  // each as sent or received (base64 or text); its hex is looked for too
  auto add_b64 = [&](const std::string& b64text) {
    secrets.push_back(b64text);
    secrets.push_back(hex_of(b64text));
  };

  std::string p1 = "attack at dawn, first plaintext";
  auto enc = post(c, "/v1/transit/encrypt/k", {{"plaintext", b64(p1)}}, token);
  REQUIRE(enc.status == 200);
  std::string ct = str(enc.data().at("ciphertext"));
  add_b64(b64(p1));
  secrets.push_back(p1);
  secrets.push_back(text_hex(p1));
  secrets.push_back(ct);
  secrets.push_back(token);
  secrets.push_back(text_hex(token));

  auto dec = post(c, "/v1/transit/decrypt/k", {{"ciphertext", ct}});
  REQUIRE(dec.status == 200);
  CHECK(unb64(str(dec.data().at("plaintext"))) == p1);

  std::string p2 = "second plaintext in a batch", p3 = "third plaintext in a batch";
  auto batch = post(c, "/v1/transit/encrypt/k",
                    {{"batch_input", json::array{json::object{{"plaintext", b64(p2)}}, json::object{{"plaintext", b64(p3)}}}}});
  REQUIRE(batch.status == 200);
  for (auto* p : {&p2, &p3}) {
    add_b64(b64(*p));
    secrets.push_back(*p);
  }
  for (auto& item : batch.data().at("batch_results").as_array()) secrets.push_back(str(item.at("ciphertext")));

  std::string message = "a message to sign";
  auto sig = post(c, "/v1/transit/sign/s", {{"input", b64(message)}});
  REQUIRE(sig.status == 200);
  add_b64(b64(message));
  secrets.push_back(str(sig.data().at("signature")));

  auto dk = post(c, "/v1/transit/datakey/plaintext/k", {});
  REQUIRE(dk.status == 200);
  add_b64(str(dk.data().at("plaintext")));
  secrets.push_back(str(dk.data().at("ciphertext")));

  auto rnd = post(c, "/v1/transit/random/32", {{"format", "hex"}});
  REQUIRE(rnd.status == 200);
  secrets.push_back(str(rnd.data().at("random_bytes")));

  // The audit key's source is out of the Transit API's reach.
  CHECK(call(c, "POST", "/v1/transit/keys/hsmb-audit", {{"type", "hmac"}}).status == 400);
  CHECK(call(c, "POST", "/v1/transit/encrypt/hsmb-audit", {{"plaintext", b64("x")}}).status == 400);
  auto listed = call(c, "LIST", "/v1/transit/keys");
  REQUIRE(listed.status == 200);
  for (auto& k : listed.data().at("keys").as_array()) CHECK(str(k) != "hsmb-audit");
  CHECK(call(c, "GET", "/v1/transit/no-such-route").status == 404);  // logged too
  // Bytes that are not UTF-8 in the target: the line stays JSON that a strict reader takes.
  CHECK(c.request("GET", "/v1/transit/keys/\xff\xc0\xaf").status == 400);  // not a key name

  auto hashed = call(c, "POST", "/v1/sys/audit-hash/file", {{"input", ct}});
  REQUIRE(hashed.status == 200);
  std::string ct_hash = str(hashed.data().at("hash"));
  CHECK(ct_hash.starts_with("hmac-sha256:"));
  CHECK(str(hashed.body.at("hash")) == ct_hash);

  auto lines = read_lines(log);
  std::map<std::string, int> per_id;
  std::map<std::string, std::string> types;
  bool decrypt_logged = false, encrypt_response_logged = false, raw_target_logged = false;
  for (auto& l : lines) {
    auto v = json::parse(l).as_object();
    auto id = str(v.at("request").at("id"));
    ++per_id[id];
    types[id] += str(v.at("type")) + " ";
    if (str(v.at("request").at("path")).starts_with("transit/keys/\xef\xbf\xbd")) raw_target_logged = true;
    if (str(v.at("type")) == "request" && str(v.at("request").at("path")) == "transit/decrypt/k") {
      CHECK(str(v.at("request").at("data").at("ciphertext")) == ct_hash);
      decrypt_logged = true;
    }
    if (str(v.at("type")) == "response" && str(v.at("request").at("path")) == "transit/encrypt/k" &&
        v.at("response").at("data").is_object() && v.at("response").at("data").as_object().contains("ciphertext") &&
        str(v.at("response").at("data").at("ciphertext")) == ct_hash)
      encrypt_response_logged = true;
  }
  CHECK(decrypt_logged);
  CHECK(encrypt_response_logged);
  CHECK(raw_target_logged);
  // keys k and s, 2 encrypts, decrypt, sign, datakey, random, 2 reserved names, list, 404, bad name, audit-hash
  CHECK(per_id.size() == 14);
  for (auto& [id, n] : per_id) {
    CAPTURE(id);
    CHECK(n == 2);
    CHECK(types[id] == "request response ");
  }

  auto text = read_all(log);
  for (auto& s : secrets) {
    CAPTURE(s);
    REQUIRE(!s.empty());
    CHECK(text.find(s) == std::string::npos);
  }

  auto viaclt = run(hsmctl() + " --socket " + b.broker->socket_path() + " audit hash '" + ct + "'");
  CHECK(viaclt.code == 0);
  CHECK(viaclt.out == ct_hash + "\n");

  auto ok = run(hsmctl() + " audit verify " + log.string());
  CHECK(ok.code == 0);
  CHECK(ok.out.starts_with("ok, "));

  auto edited = read_lines(log);
  REQUIRE(edited.size() > 6);
  auto at = edited[5].find("transit/");
  REQUIRE(at != std::string::npos);
  edited[5].replace(at, 8, "tranzit/");
  {
    std::ofstream out(log, std::ios::trunc);
    for (auto& l : edited) out << l << "\n";
  }
  auto bad = run(hsmctl() + " audit verify " + log.string());
  CHECK(bad.code == 1);
  CHECK(bad.out.find(":6:") != std::string::npos);
}

TEST_CASE("with callers: a denied request is on record with who asked; tokens in no form; an auditor hashes with sys/* read") {
  temp_dir dir;
  auto log = dir.path / "audit.log";
  const std::string app_token = "hvs.app-token-never-logged-1", auditor_token = "hvs.auditor-token-never-logged-2";
  single_member_broker b("audit: { file: " + log.string() + ", fail_closed: true }\nauth:\n  tokens:\n" +
                         token_binding("billing-app", app_token, "app") + token_binding("auditor", auditor_token, "auditor") +
                         "  unix:\n    - { uid: " + std::to_string(::getuid()) + R"(, policies: [admin] }
policies:
  app:
    - { path: "transit/encrypt/billing", capabilities: [update] }
  auditor:
    - { path: "sys/*", capabilities: [read] }
  admin:
    - { path: "*", capabilities: [create, read, update, delete, list, sudo] }
)");
  auto c = b.broker->unix_client();
  CHECK(b.broker->log_tail(1 << 20).find("no auth section") == std::string::npos);
  REQUIRE(call(c, "POST", "/v1/transit/keys/billing", {{"type", "aes256-gcm96"}}).status == 200);
  auto enc = post(c, "/v1/transit/encrypt/billing", {{"plaintext", b64("card 4111")}}, app_token);
  REQUIRE(enc.status == 200);
  std::string ct = str(enc.data().at("ciphertext"));
  auto denied = post(c, "/v1/transit/decrypt/billing", {{"ciphertext", ct}}, app_token);
  CHECK(denied.status == 403);
  CHECK(post(c, "/v1/sys/audit-hash/file", {{"input", ct}}, app_token).status == 403);
  auto hashed = post(c, "/v1/sys/audit-hash/file", {{"input", ct}}, auditor_token);
  REQUIRE(hashed.status == 200);  // DESIGN: sys/* needs read
  std::string ct_hash = str(hashed.data().at("hash"));
  auto token_hashed = post(c, "/v1/sys/audit-hash/file", {{"input", app_token}}, auditor_token);
  REQUIRE(token_hashed.status == 200);
  std::string app_token_hash = str(token_hashed.data().at("hash"));

  bool denied_request = false, denied_response = false;
  for (auto& l : read_lines(log)) {
    auto v = json::parse(l).as_object();
    if (str(v.at("request").at("path")) == "sys/audit-hash/file") CHECK(str(v.at("request").at("operation")) == "update");  // Vault's, for a POST
    if (str(v.at("request").at("path")) != "transit/decrypt/billing") continue;
    CHECK(str(v.at("auth").at("display_name")) == "token-billing-app");  // as Vault names a token
    CHECK(v.at("auth").at("policies") == json::array{"app"});
    CHECK(str(v.at("auth").at("metadata").at("kind")) == "token");
    CHECK(str(v.at("auth").at("client_token")) == app_token_hash);  // as Vault's: the token's requests, found by its hash
    CHECK(str(v.at("request").at("data").at("ciphertext")) == ct_hash);  // what was tried, as its hash
    if (str(v.at("type")) == "request") denied_request = true;
    if (str(v.at("type")) == "response") {
      CHECK(v.at("response").at("status").as_int64() == 403);
      CHECK(str(v.at("error")) == "permission denied");
      denied_response = true;
    }
  }
  CHECK(denied_request);
  CHECK(denied_response);
  auto text = read_all(log);
  for (auto& token : {app_token, auditor_token})
    for (auto& form : {token, b64(token), text_hex(token), hsmb::api::sha256_hex(token)}) {
      CAPTURE(form);
      CHECK(text.find(form) == std::string::npos);
    }
  for (auto& form : {ct, ct.substr(ct.rfind(':') + 1), hex_of(ct.substr(ct.rfind(':') + 1)), b64("card 4111")}) {
    CAPTURE(form);
    CHECK(text.find(form) == std::string::npos);
  }
}

// The audit key is derived in an HSM from the replicated key hsmb-audit: a value hashes the same
// whichever member derives it and in every broker generation, so a search by hash spans them.
TEST_CASE("the audit key is the same on every member and in every broker generation") {
  using namespace std::chrono_literals;
  softhsm_token ta("hsm-a"), tb("hsm-b");
  auto spec = [](softhsm_token& t, const std::string& name) {
    return member_spec{name, softhsm_token::module_path(), t.label(), t.pin(), {{"SOFTHSM2_CONF", t.conf_path()}}};
  };
  temp_dir dir;
  const std::string audit_yaml = "audit: { file: " + (dir.path / "audit.log").string() + ", fail_closed: true }\n";
  auto hash_in = [&](std::vector<member_spec> members, bool enroll = false) {
    bool both = members.size() == 2;
    broker_process b(std::move(members), audit_yaml + (both ? "replication: { mode: broker, min_copies: 2 }\n" : ""));
    if (enroll) {  // the cluster key on both tokens, as an operator sets it up: the broker copies keys
      auto so_pin = b.dir() + "/so.pin";
      std::ofstream(so_pin) << ta.so_pin() << "\n";
      std::string out;
      REQUIRE_MESSAGE(run_command(std::string(HSMB_BIN_DIR) + "/hsm-broker --config " + b.config_path() +
                                      " --enroll --so-pin-file " + so_pin + " 2>&1", &out) == 0, out);
    }
    b.start();
    auto c = b.unix_client();
    json_reply r;
    bool hashed = eventually([&] {
      r = call(c, "POST", "/v1/sys/audit-hash/file", {{"input", "vault:v1:the-same-value"}});
      return r.status == 200;
    }, 20s);
    REQUIRE_MESSAGE(hashed, r.error() << "\n" << b.log_tail());
    return str(r.data().at("hash"));
  };
  auto first = hash_in({spec(ta, "hsm-a"), spec(tb, "hsm-b")}, true);  // hsmb-audit made on both (min_copies 2)
  CHECK(hash_in({spec(tb, "hsm-b")}) == first);  // another generation, hsm-b alone derives it
  CHECK(hash_in({spec(ta, "hsm-a")}) == first);  // and hsm-a alone
  CHECK(hash_in({spec(ta, "hsm-a"), spec(tb, "hsm-b")}) == first);
}

TEST_CASE("fail_closed: an audit log that cannot be written gets 503 and nothing is served; fail-open serves") {
  temp_dir dir;
  auto unwritable = dir.path / "no-such-dir" / "audit.log";
  {
    single_member_broker b("audit: { file: " + unwritable.string() + ", fail_closed: true }\n");
    auto c = b.broker->unix_client();
    auto r = call(c, "POST", "/v1/transit/keys/k", {{"type", "aes256-gcm96"}});
    CHECK(r.status == 503);
    CHECK(call(c, "GET", "/v1/transit/keys/k").status == 503);
    CHECK(call(c, "GET", "/v1/sys/health").status == 200);  // not audited
  }
  {
    single_member_broker b("audit: { file: " + unwritable.string() + ", fail_closed: false }\n");
    auto c = b.broker->unix_client();
    CHECK(call(c, "POST", "/v1/transit/keys/k", {{"type", "aes256-gcm96"}}).status == 200);
  }
}
