// The Transit API end to end: a real broker, a real worker, a real SoftHSM2 token, over the Unix
// socket and TCP.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>

#include "common/base64.h"

#include "tests/integration/broker_fixture.h"

using namespace hsmb::test;
namespace json = boost::json;

namespace {

broker_process& broker() { return *single_member_broker::shared().broker; }

json_reply create(hsmb::client::broker_client& c, const std::string& name, const std::string& type) {
  auto r = call(c, "POST", "/v1/transit/keys/" + name, {{"type", type}});
  REQUIRE_MESSAGE(r.status == 200, r.error());
  return r;
}

std::string encrypt(hsmb::client::broker_client& c, const std::string& key, const std::string& plain,
                    json::object extra = {}) {
  extra["plaintext"] = b64(plain);
  auto r = call(c, "POST", "/v1/transit/encrypt/" + key, extra);
  REQUIRE_MESSAGE(r.status == 200, r.error());
  return std::string(r.data().at("ciphertext").as_string());
}

json_reply decrypt(hsmb::client::broker_client& c, const std::string& key, const std::string& ct, json::object extra = {}) {
  extra["ciphertext"] = ct;
  return call(c, "POST", "/v1/transit/decrypt/" + key, extra);
}

std::string write_file(const std::string& name, const std::string& content) {
  auto path = broker().dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

}  // namespace

TEST_CASE("symmetric keys: encrypt and decrypt, with and without associated data") {
  auto c = broker().unix_client();
  for (std::string type : {"aes256-gcm96", "aes128-gcm96"}) {
    std::string name = "sym-" + type;
    auto info = create(c, name, type);
    CHECK(info.data().at("type").as_string() == type);
    CHECK(info.data().at("latest_version").to_number<int>() == 1);
    auto ct = encrypt(c, name, "attack at dawn");
    CHECK(ct.starts_with("vault:v1:"));
    CHECK(encrypt(c, name, "attack at dawn") != ct);  // fresh nonce each time
    auto d = decrypt(c, name, ct);
    REQUIRE(d.status == 200);
    CHECK(unb64(d.data().at("plaintext").as_string()) == "attack at dawn");

    auto ct_aad = encrypt(c, name, "with aad", {{"associated_data", b64("order-17")}});
    CHECK(unb64(decrypt(c, name, ct_aad, {{"associated_data", b64("order-17")}}).data().at("plaintext").as_string()) == "with aad");
    auto wrong_aad = decrypt(c, name, ct_aad, {{"associated_data", b64("order-18")}});
    CHECK(wrong_aad.status == 400);
    CHECK(wrong_aad.error() == "cipher: message authentication failed");
  }
  auto empty = encrypt(c, "sym-aes256-gcm96", "");
  CHECK(decrypt(c, "sym-aes256-gcm96", empty).status == 200);
}

TEST_CASE("tampered ciphertext is a 400 and leaves the member serving") {
  auto c = broker().unix_client();
  create(c, "tamper", "aes256-gcm96");
  auto ct = encrypt(c, "tamper", "secret");
  auto raw = hsmb::base64_decode(ct.substr(9));
  REQUIRE(raw);
  for (std::size_t pos : {std::size_t(0), std::size_t(13), raw->size() - 1}) {  // nonce, body, tag
    auto bad = *raw;
    bad[pos] ^= 1;
    auto r = decrypt(c, "tamper", "vault:v1:" + hsmb::base64_encode(bad));
    CHECK(r.status == 400);
    CHECK(r.error() == "cipher: message authentication failed");
  }
  CHECK(decrypt(c, "tamper", "vault:v1:AAAA").status == 400);
  CHECK(decrypt(c, "tamper", "not-a-ciphertext").status == 400);
  CHECK(decrypt(c, "tamper", "vault:v9:" + ct.substr(9)).status == 400);
  auto members = call(c, "GET", "/v1/broker/members");
  auto& m = members.data().at("members").at(0);
  CHECK(m.at("state").as_string() == "serving");
  CHECK(m.at("worker_restarts").to_number<int>() == 0);
  CHECK(m.at("errors").to_number<int>() == 0);
}

TEST_CASE("asymmetric keys sign, verify, and openssl agrees with the PEM public key") {
  auto c = broker().unix_client();
  struct kind {
    std::string type, openssl_args, sig_alg;
  };
  std::vector<kind> kinds = {
      {"ecdsa-p256", "-sha256", ""},
      {"ecdsa-p384", "-sha256", ""},
      {"rsa-2048", "-sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:auto", "pss"},
      {"rsa-2048", "-sha256", "pkcs1v15"},
      {"rsa-3072", "-sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:auto", "pss"},
      {"ed25519", "", ""},
  };
  std::string message = "pay 100 to alice";
  for (auto& k : kinds) {
    CAPTURE(k.type);
    CAPTURE(k.sig_alg);
    std::string name = "sig-" + k.type;
    create(c, name, k.type);
    json::object req{{"input", b64(message)}};
    if (!k.sig_alg.empty()) req["signature_algorithm"] = k.sig_alg;
    auto s = call(c, "POST", "/v1/transit/sign/" + name, req);
    REQUIRE_MESSAGE(s.status == 200, s.error());
    std::string sig(s.data().at("signature").as_string());
    CHECK(sig.starts_with("vault:v1:"));

    req["signature"] = sig;
    auto v = call(c, "POST", "/v1/transit/verify/" + name, req);
    REQUIRE_MESSAGE(v.status == 200, v.error());
    CHECK(v.data().at("valid").as_bool());
    req["input"] = b64("pay 1000 to mallory");
    CHECK_FALSE(call(c, "POST", "/v1/transit/verify/" + name, req).data().at("valid").as_bool());

    auto info = call(c, "GET", "/v1/transit/keys/" + name);
    auto& v1 = info.data().at("keys").at("1");
    // Vault gives Ed25519's public key as base64 of the raw 32 bytes; the broker adds the PEM.
    if (k.type == "ed25519") CHECK(unb64(v1.at("public_key").as_string()).size() == 32);
    std::string pem(v1.at(k.type == "ed25519" ? "public_key_pem" : "public_key").as_string());
    REQUIRE(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    auto pem_path = write_file("pub.pem", pem);
    auto msg_path = write_file("msg.bin", message);
    auto sig_path = write_file("sig.bin", unb64(sig.substr(9)));
    std::string cmd = k.type == "ed25519"
                          ? "openssl pkeyutl -verify -pubin -inkey " + pem_path + " -rawin -in " + msg_path + " -sigfile " + sig_path
                          : "openssl dgst " + k.openssl_args + " -verify " + pem_path + " -signature " + sig_path + " " + msg_path;
    std::string out;
    CHECK_MESSAGE(run_command(cmd, &out) == 0, (cmd + "\n" + out));
  }
}

TEST_CASE("sign options: hash in the path, prehashed input, jws marshaling, rsa-4096") {
  auto c = broker().unix_client();
  create(c, "opts-ec", "ecdsa-p256");
  auto s = call(c, "POST", "/v1/transit/sign/opts-ec/sha2-384", {{"input", b64("m")}});
  REQUIRE(s.status == 200);
  auto v = call(c, "POST", "/v1/transit/verify/opts-ec/sha2-384", {{"input", b64("m")}, {"signature", s.data().at("signature")}});
  CHECK(v.data().at("valid").as_bool());
  auto v256 = call(c, "POST", "/v1/transit/verify/opts-ec/sha2-256", {{"input", b64("m")}, {"signature", s.data().at("signature")}});
  CHECK_FALSE(v256.data().at("valid").as_bool());

  std::string digest(32, '\x01');
  auto pre = call(c, "POST", "/v1/transit/sign/opts-ec", {{"input", b64(digest)}, {"prehashed", true}});
  REQUIRE(pre.status == 200);
  CHECK(call(c, "POST", "/v1/transit/sign/opts-ec", {{"input", b64("short")}, {"prehashed", true}}).status == 400);

  auto jws = call(c, "POST", "/v1/transit/sign/opts-ec", {{"input", b64("m")}, {"marshaling_algorithm", "jws"}});
  REQUIRE(jws.status == 200);
  std::string jsig(jws.data().at("signature").as_string());
  CHECK(jsig.find_first_of("+/=") == std::string::npos);
  auto raw = hsmb::base64url_decode(jsig.substr(9));
  REQUIRE(raw);
  CHECK(raw->size() == 64);  // r||s
  auto jv = call(c, "POST", "/v1/transit/verify/opts-ec",
                 {{"input", b64("m")}, {"signature", jsig}, {"marshaling_algorithm", "jws"}});
  CHECK(jv.data().at("valid").as_bool());

  create(c, "opts-rsa4096", "rsa-4096");
  auto big = call(c, "POST", "/v1/transit/sign/opts-rsa4096", {{"input", b64("m")}});
  REQUIRE(big.status == 200);
  CHECK(unb64(std::string(big.data().at("signature").as_string()).substr(9)).size() == 512);
}

TEST_CASE("hmac, random and data keys") {
  auto c = broker().unix_client();
  create(c, "mac", "hmac");
  auto h1 = call(c, "POST", "/v1/transit/hmac/mac", {{"input", b64("data")}});
  REQUIRE(h1.status == 200);
  auto h2 = call(c, "POST", "/v1/transit/hmac/mac/sha2-256", {{"input", b64("data")}});
  CHECK(h1.data().at("hmac") == h2.data().at("hmac"));
  CHECK(unb64(std::string(h1.data().at("hmac").as_string()).substr(9)).size() == 32);
  auto h512 = call(c, "POST", "/v1/transit/hmac/mac/sha2-512", {{"input", b64("data")}});
  CHECK(unb64(std::string(h512.data().at("hmac").as_string()).substr(9)).size() == 64);
  // Vault names the hash "algorithm" in an hmac body (and keeps it as an alias on sign/verify).
  auto named = call(c, "POST", "/v1/transit/hmac/mac", {{"input", b64("data")}, {"algorithm", "sha2-512"}});
  CHECK(named.data().at("hmac") == h512.data().at("hmac"));
  CHECK(call(c, "POST", "/v1/transit/verify/mac", {{"input", b64("data")}, {"hmac", h512.data().at("hmac")}, {"algorithm", "sha2-512"}})
            .data().at("valid").as_bool());
  CHECK(call(c, "POST", "/v1/transit/verify/mac", {{"input", b64("data")}, {"hmac", h1.data().at("hmac")}}).data().at("valid").as_bool());
  CHECK_FALSE(call(c, "POST", "/v1/transit/verify/mac", {{"input", b64("datA")}, {"hmac", h1.data().at("hmac")}}).data().at("valid").as_bool());

  auto r = call(c, "POST", "/v1/transit/random/48");
  REQUIRE(r.status == 200);
  CHECK(unb64(r.data().at("random_bytes").as_string()).size() == 48);
  auto hex = call(c, "POST", "/v1/transit/random", {{"bytes", 16}, {"format", "hex"}});
  CHECK(hex.data().at("random_bytes").as_string().size() == 32);
  CHECK(call(c, "POST", "/v1/transit/random/0").status == 400);
  CHECK(call(c, "POST", "/v1/transit/random", {{"format", "raw"}}).status == 400);

  create(c, "dk", "aes256-gcm96");
  auto p = call(c, "POST", "/v1/transit/datakey/plaintext/dk", {{"bits", 256}});
  REQUIRE(p.status == 200);
  auto plain = unb64(p.data().at("plaintext").as_string());
  CHECK(plain.size() == 32);
  auto d = decrypt(c, "dk", std::string(p.data().at("ciphertext").as_string()));
  CHECK(unb64(d.data().at("plaintext").as_string()) == plain);
  auto w = call(c, "POST", "/v1/transit/datakey/wrapped/dk");
  REQUIRE(w.status == 200);
  CHECK_FALSE(w.data().as_object().contains("plaintext"));
  CHECK(call(c, "POST", "/v1/transit/datakey/plaintext/dk", {{"bits", 100}}).status == 400);
}

TEST_CASE("batch encrypt, decrypt and sign") {
  auto c = broker().unix_client();
  create(c, "batch", "aes256-gcm96");
  json::array in;
  for (int i = 0; i < 5; ++i) in.push_back(json::object{{"plaintext", b64("item " + std::to_string(i))}, {"reference", i}});
  auto e = call(c, "POST", "/v1/transit/encrypt/batch", {{"batch_input", in}});
  REQUIRE(e.status == 200);
  auto& results = e.data().at("batch_results").as_array();
  REQUIRE(results.size() == 5);
  json::array dec_in;
  for (auto& r : results) dec_in.push_back(json::object{{"ciphertext", r.at("ciphertext")}, {"reference", r.at("reference")}});
  dec_in.push_back(json::object{{"ciphertext", "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, {"reference", "bad"}});
  // Partial failure: 400 with per-item errors, as Vault; partial_failure_response_code picks another status.
  CHECK(call(c, "POST", "/v1/transit/decrypt/batch", {{"batch_input", dec_in}}).status == 400);
  auto d = call(c, "POST", "/v1/transit/decrypt/batch", {{"batch_input", dec_in}, {"partial_failure_response_code", 200}});
  REQUIRE(d.status == 200);
  auto& out = d.data().at("batch_results").as_array();
  REQUIRE(out.size() == 6);
  for (int i = 0; i < 5; ++i) {
    CHECK(unb64(out[i].at("plaintext").as_string()) == "item " + std::to_string(i));
    CHECK(out[i].at("reference").to_number<int>() == i);
  }
  CHECK(out[5].at("error").as_string() == "cipher: message authentication failed");
  CHECK(out[5].at("reference").as_string() == "bad");

  auto all_bad = call(c, "POST", "/v1/transit/decrypt/batch", {{"batch_input", json::array{json::object{{"ciphertext", "x"}}}}});
  CHECK(all_bad.status == 400);

  create(c, "batch-sig", "ecdsa-p256");
  auto s = call(c, "POST", "/v1/transit/sign/batch-sig",
                {{"batch_input", json::array{json::object{{"input", b64("a")}}, json::object{{"input", b64("b")}}}}});
  REQUIRE(s.status == 200);
  CHECK(s.data().at("batch_results").as_array().size() == 2);
  // As in Vault, every key type can HMAC (with its own companion secret).
  auto h = call(c, "POST", "/v1/transit/hmac/batch-sig", {{"input", b64("a")}});
  REQUIRE(h.status == 200);
  CHECK(call(c, "POST", "/v1/transit/verify/batch-sig", {{"input", b64("a")}, {"hmac", h.data().at("hmac")}}).data().at("valid").as_bool());
}

TEST_CASE("rotation: old versions still decrypt until min_decryption_version moves") {
  auto c = broker().unix_client();
  create(c, "rot", "aes256-gcm96");
  auto v1 = encrypt(c, "rot", "one");
  auto r = call(c, "POST", "/v1/transit/keys/rot/rotate");
  REQUIRE(r.status == 200);
  CHECK(r.data().at("latest_version").to_number<int>() == 2);
  auto v2 = encrypt(c, "rot", "two");
  CHECK(v2.starts_with("vault:v2:"));
  CHECK(unb64(decrypt(c, "rot", v1).data().at("plaintext").as_string()) == "one");
  CHECK(encrypt(c, "rot", "old", {{"key_version", 1}}).starts_with("vault:v1:"));

  auto rw = call(c, "POST", "/v1/transit/rewrap/rot", {{"ciphertext", v1}});
  REQUIRE(rw.status == 200);
  CHECK(std::string(rw.data().at("ciphertext").as_string()).starts_with("vault:v2:"));

  auto cfg = call(c, "POST", "/v1/transit/keys/rot/config", {{"min_decryption_version", 2}});
  REQUIRE(cfg.status == 200);
  CHECK(cfg.data().at("min_decryption_version").to_number<int>() == 2);
  auto old = decrypt(c, "rot", v1);
  CHECK(old.status == 400);
  CHECK(old.error().find("disallowed by policy") != std::string::npos);
  CHECK(decrypt(c, "rot", v2).status == 200);
  CHECK(call(c, "POST", "/v1/transit/keys/rot/config", {{"min_decryption_version", 9}}).status == 400);

  create(c, "rot-sig", "ed25519");
  auto s1 = call(c, "POST", "/v1/transit/sign/rot-sig", {{"input", b64("m")}});
  call(c, "POST", "/v1/transit/keys/rot-sig/rotate");
  auto s2 = call(c, "POST", "/v1/transit/sign/rot-sig", {{"input", b64("m")}});
  CHECK(std::string(s2.data().at("signature").as_string()).starts_with("vault:v2:"));
  CHECK(call(c, "POST", "/v1/transit/verify/rot-sig", {{"input", b64("m")}, {"signature", s1.data().at("signature")}}).data().at("valid").as_bool());
  auto info = call(c, "GET", "/v1/transit/keys/rot-sig");
  CHECK(info.data().at("keys").as_object().size() == 2);
}

TEST_CASE("key management: list, idempotent create, delete only when allowed") {
  auto c = broker().unix_client();
  create(c, "mgmt", "aes256-gcm96");
  CHECK(call(c, "POST", "/v1/transit/keys/mgmt", {{"type", "aes256-gcm96"}}).status == 200);
  auto clash = call(c, "POST", "/v1/transit/keys/mgmt", {{"type", "ecdsa-p256"}});
  CHECK(clash.status == 400);
  CHECK(clash.error().find("already exists") != std::string::npos);

  auto list = call(c, "LIST", "/v1/transit/keys");
  REQUIRE(list.status == 200);
  auto& keys = list.data().at("keys").as_array();
  CHECK(std::find(keys.begin(), keys.end(), json::value("mgmt")) != keys.end());
  CHECK(call(c, "GET", "/v1/transit/keys?list=true").data().at("keys") == list.data().at("keys"));

  auto refused = call(c, "DELETE", "/v1/transit/keys/mgmt");
  CHECK(refused.status == 400);
  CHECK(call(c, "POST", "/v1/transit/keys/mgmt/config", {{"deletion_allowed", true}}).status == 200);
  CHECK(call(c, "DELETE", "/v1/transit/keys/mgmt").status == 204);
  CHECK(call(c, "GET", "/v1/transit/keys/mgmt").status == 404);
  create(c, "mgmt", "ecdsa-p256");  // the name is free again
}

TEST_CASE("caller errors get clear statuses and messages") {
  auto c = broker().unix_client();
  create(c, "errs-aes", "aes256-gcm96");
  create(c, "errs-ec", "ecdsa-p256");
  auto unknown = call(c, "POST", "/v1/transit/encrypt/no-such-key", {{"plaintext", b64("x")}});
  CHECK(unknown.status == 404);
  CHECK(unknown.error() == "key \"no-such-key\" not found");
  CHECK(call(c, "GET", "/v1/transit/keys/no-such-key").status == 404);

  CHECK(call(c, "POST", "/v1/transit/encrypt/errs-ec", {{"plaintext", b64("x")}}).status == 400);
  CHECK(call(c, "POST", "/v1/transit/sign/errs-aes", {{"input", b64("x")}}).status == 400);
  CHECK(call(c, "POST", "/v1/transit/hmac/errs-aes/sha2-999", {{"input", b64("x")}}).status == 400);
  CHECK(call(c, "POST", "/v1/transit/keys/bad-type", {{"type", "des"}}).status == 400);
  CHECK(call(c, "POST", "/v1/transit/keys/exp", {{"exportable", true}}).status == 400);
  CHECK(call(c, "POST", "/v1/transit/encrypt/errs-aes", {{"plaintext", "not base64!"}}).status == 400);
  CHECK(call(c, "POST", "/v1/transit/encrypt/errs-aes").status == 400);  // missing plaintext
  CHECK(call(c, "POST", "/v1/transit/sign/errs-ec/md5", {{"input", b64("x")}}).status == 400);
  // A caller error on the HMAC-verify path once crashed the broker (co_await inside ?: on GCC 12).
  auto too_new = call(c, "POST", "/v1/transit/verify/errs-aes", {{"input", b64("x")}, {"hmac", "vault:v7:AAAA"}});
  CHECK(too_new.status == 400);
  CHECK(call(c, "POST", "/v1/transit/verify/errs-aes", {{"input", b64("x")}, {"hmac", "garbage"}}).status == 400);

  auto malformed = c.request("POST", "/v1/transit/encrypt/errs-aes", "{\"plaintext\": ");
  CHECK(malformed.status == 400);
  auto body = json::parse(malformed.body);
  CHECK(body.at("errors").as_array().size() == 1);
  CHECK(c.request("POST", "/v1/transit/encrypt/errs-aes", "[]").status == 400);

  CHECK(call(c, "GET", "/v1/nothing/here").status == 404);
  CHECK(call(c, "GET", "/v1/transit/encrypt/errs-aes").status == 405);
  CHECK(call(c, "GET", "/v1/transit/bogus/errs-aes").status == 404);  // no such operation: no route
  CHECK(c.request("POST", "/v1/transit/encrypt/errs-aes", std::string(5u << 20, 'x')).status == 413);

  auto members = call(c, "GET", "/v1/broker/members");
  CHECK(members.data().at("members").at(0).at("state").as_string() == "serving");
  CHECK(members.data().at("members").at(0).at("worker_restarts").to_number<int>() == 0);
}

TEST_CASE("the same API over TCP, health and members") {
  auto c = broker().tcp_client();
  auto health = call(c, "GET", "/v1/sys/health");
  REQUIRE(health.status == 200);
  CHECK(health.body.at("initialized").as_bool());
  CHECK_FALSE(health.body.at("sealed").as_bool());
  CHECK(health.body.at("members").at("serving").to_number<int>() == 1);
  create(c, "tcp-key", "aes256-gcm96");
  auto ct = encrypt(c, "tcp-key", "over tcp");
  auto u = broker().unix_client();
  CHECK(unb64(decrypt(u, "tcp-key", ct).data().at("plaintext").as_string()) == "over tcp");
  create(c, "tcp-sig", "ecdsa-p384");
  auto s = call(c, "POST", "/v1/transit/sign/tcp-sig", {{"input", b64("m")}});
  CHECK(call(c, "POST", "/v1/transit/verify/tcp-sig", {{"input", b64("m")}, {"signature", s.data().at("signature")}}).data().at("valid").as_bool());
  auto m = call(c, "GET", "/v1/broker/members");
  auto& member = m.data().at("members").at(0);
  CHECK(member.at("name").as_string() == "hsm-a");
  CHECK(member.at("token").at("label").as_string() == "hsm-a");
  CHECK(member.at("requests").to_number<int>() > 0);
  auto metrics = c.request("GET", "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find("hsmb_member_up{member=\"hsm-a\"} 1") != std::string::npos);
  CHECK(c.connections_opened() == 1);  // keep-alive held for all of the above
}

TEST_CASE("hsmctl against the real broker") {
  auto c = broker().unix_client();
  create(c, "ctl", "aes256-gcm96");
  create(c, "ctl-sig", "ecdsa-p256");
  std::string ctl = std::string(HSMB_BIN_DIR) + "/hsmctl --socket " + broker().socket_path() + " ";
  std::string ct, out;
  REQUIRE(run_command(ctl + "encrypt ctl 'from hsmctl'", &ct) == 0);
  while (!ct.empty() && ct.back() == '\n') ct.pop_back();
  CHECK(ct.starts_with("vault:v1:"));
  REQUIRE(run_command(ctl + "decrypt ctl " + ct, &out) == 0);
  CHECK(out == "from hsmctl");
  std::string sig;
  REQUIRE(run_command(ctl + "sign ctl-sig hello", &sig) == 0);
  while (!sig.empty() && sig.back() == '\n') sig.pop_back();
  CHECK(run_command(ctl + "verify ctl-sig hello " + sig) == 0);
  CHECK(run_command(ctl + "verify ctl-sig bye " + sig) == 1);
  REQUIRE(run_command(ctl + "members", &out) == 0);
  CHECK(out.find("hsm-a") != std::string::npos);
  CHECK(out.find("serving") != std::string::npos);
  REQUIRE(run_command(ctl + "keys", &out) == 0);
  CHECK(out.find("ctl-sig") != std::string::npos);
  CHECK(run_command(ctl + "--json random 8", &out) == 0);
  CHECK(out.find("random_bytes") != std::string::npos);
  CHECK(run_command(ctl + "encrypt no-such-key x", &out) == 2);
  CHECK(out.find("404") != std::string::npos);
}
