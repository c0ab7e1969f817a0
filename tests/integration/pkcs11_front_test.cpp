// The PKCS#11 front module (build/lib/libhsm-broker-pkcs11.so) with real PKCS#11 clients against a
// real broker on SoftHSM2: pkcs11-tool (OpenSC), OpenSSL through libp11's engine, Java's
// SunPKCS11, and p11_app (a small application that dlopens the module) for the fork, locking,
// GCM and leak checks. Signatures are checked by `openssl` on the broker's PEM public keys.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <openssl/evp.h>

#include "tests/integration/broker_fixture.h"
#include "tests/lib/temp_dir.h"

using namespace hsmb::test;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

const std::string module_path = HSMB_PKCS11_MODULE;
const std::string p11_app = HSMB_P11_APP;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

std::string hex(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string id_arg(const std::string& id) { return "--id " + hex(id); }


std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// `name=value` lines of p11_app's output.
std::map<std::string, std::string> fields(const std::string& out) {
  std::map<std::string, std::string> m;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (auto eq = line.find('='); eq != std::string::npos) m[line.substr(0, eq)] = line.substr(eq + 1);
  return m;
}

// A broker with one key of each type the module presents; "p11-ec" has two versions.
struct front_env {
  single_member_broker& b = single_member_broker::shared();
  temp_dir dir{"hsmb-p11"};
  front_env() {
    ::setenv("HSM_BROKER_SOCKET", b.broker->socket_path().c_str(), 1);
    ::unsetenv("HSM_BROKER_TOKEN");
    static bool made = false;
    if (made) return;
    auto c = b.broker->unix_client();
    for (auto [name, type] : {std::pair{"p11-ec", "ecdsa-p256"}, {"p11-ec384", "ecdsa-p384"}, {"p11-rsa", "rsa-2048"},
                              {"p11-ed", "ed25519"}, {"p11-aes", "aes256-gcm96"}, {"p11-hmac", "hmac"}}) {
      auto r = call(c, "POST", std::string("/v1/transit/keys/") + name, {{"type", type}});
      REQUIRE_MESSAGE(r.status == 200, name << ": " << r.error());
    }
    REQUIRE(call(c, "POST", "/v1/transit/keys/p11-ec/rotate").status == 200);
    made = true;
  }
  // The PEM public key of a version, from the broker.
  fs::path pem(const std::string& key, int version) {
    auto c = b.broker->unix_client();
    auto r = call(c, "GET", "/v1/transit/keys/" + key);
    REQUIRE(r.status == 200);
    auto path = dir.path / (key + "-v" + std::to_string(version) + ".pem");
    auto& entry = r.data().at("keys").at(std::to_string(version)).as_object();
    auto* pem = entry.if_contains("public_key_pem");  // Ed25519's public_key is raw base64, as in Vault
    write_file(path, std::string((pem ? *pem : entry.at("public_key")).as_string()));
    return path;
  }
  int run(const std::string& cmd, std::string* out = nullptr) { return run_command(cmd, out); }
  std::string tool(const std::string& args) {
    std::string out;
    int rc = run("pkcs11-tool --module " + module_path + " " + args, &out);
    CHECK_MESSAGE(rc == 0, "pkcs11-tool " << args << "\n" << out);
    return out;
  }
  fs::path file(const std::string& name, const std::string& content) {
    auto p = dir.path / name;
    write_file(p, content);
    return p;
  }
};

}  // namespace

TEST_CASE("pkcs11-tool sees one slot, the hsm-broker token, its mechanisms and the keys as objects") {
  front_env env;
  auto slots = env.tool("-L");
  CHECK(slots.find("token label        : hsm-broker") != std::string::npos);
  auto mechs = env.tool("-M");
  for (auto m : {"ECDSA-SHA256", "ECDSA", "SHA256-RSA-PKCS", "RSA-PKCS-PSS", "SHA512-RSA-PKCS-PSS", "EDDSA", "SHA256-HMAC", "AES-GCM"})
    CHECK_MESSAGE(mechs.find(m) != std::string::npos, m << " missing from\n" << mechs);
  auto objects = env.tool("-O");
  for (auto id : {"p11-ec:v1", "p11-ec:v2", "p11-rsa:v1", "p11-aes:v1", "p11-hmac:v1"})
    CHECK_MESSAGE(objects.find("ID:         " + hex(id)) != std::string::npos, id << " missing from\n" << objects);
  auto selftest = env.tool("--test");  // OpenSC's own round of random, sign and verify calls
  CHECK_MESSAGE(selftest.find("No errors") != std::string::npos, selftest);
  // CKK_EC_EDWARDS only when asked for by label, ID or key type (the EdDSA signing case finds it by ID)
  CHECK(objects.find("label:      p11-ed") == std::string::npos);
}

TEST_CASE("pkcs11-tool signs with each key type and openssl verifies the signature on the broker's public key") {
  front_env env;
  auto msg = env.file("msg", "the seed's users did not speak HTTP\n");
  auto d = env.dir.path;
  std::string out;
  SUBCASE("ECDSA P-256 with the mechanism hashing, the label's latest version, and the module's own verify") {
    env.tool("--sign -m ECDSA-SHA256 " + id_arg("p11-ec:v2") + " -i " + msg.string() + " -o " + (d / "sig").string() +
             " --signature-format openssl");
    CHECK(env.run("openssl dgst -sha256 -verify " + env.pem("p11-ec", 2).string() + " -signature " + (d / "sig").string() + " " +
                  msg.string(), &out) == 0);
    CHECK(env.run("openssl dgst -sha256 -verify " + env.pem("p11-ec", 1).string() + " -signature " + (d / "sig").string() + " " +
                  msg.string(), &out) != 0);  // signed by v2, not v1
    auto v = env.tool("--verify -m ECDSA-SHA256 " + id_arg("p11-ec:v2") + " -i " + msg.string() + " --signature-file " +
                      (d / "sig").string() + " --signature-format openssl");
    CHECK(v.find("Signature is valid") != std::string::npos);
  }
  SUBCASE("ECDSA raw (CKM_ECDSA over a digest) on P-256 v1, and ECDSA-SHA384 on P-384: r||s of the curve's size") {
    REQUIRE(env.run("openssl dgst -sha256 -binary -out " + (d / "h").string() + " " + msg.string()) == 0);
    env.tool("--sign -m ECDSA " + id_arg("p11-ec:v1") + " -i " + (d / "h").string() + " -o " + (d / "raw").string());
    CHECK(fs::file_size(d / "raw") == 64);
    env.tool("--sign -m ECDSA " + id_arg("p11-ec:v1") + " -i " + (d / "h").string() + " -o " + (d / "sig").string() +
             " --signature-format openssl");
    CHECK(env.run("openssl pkeyutl -verify -pubin -inkey " + env.pem("p11-ec", 1).string() + " -in " + (d / "h").string() +
                  " -sigfile " + (d / "sig").string(), &out) == 0);
    env.tool("--sign -m ECDSA-SHA384 " + id_arg("p11-ec384:v1") + " -i " + msg.string() + " -o " + (d / "raw384").string());
    CHECK(fs::file_size(d / "raw384") == 96);
    env.tool("--sign -m ECDSA-SHA384 " + id_arg("p11-ec384:v1") + " -i " + msg.string() + " -o " + (d / "sig").string() +
             " --signature-format openssl");
    CHECK(env.run("openssl dgst -sha384 -verify " + env.pem("p11-ec384", 1).string() + " -signature " + (d / "sig").string() +
                  " " + msg.string(), &out) == 0);
  }
  SUBCASE("RSA: PKCS#1 v1.5 with the mechanism hashing and raw over a DigestInfo; PSS both ways") {
    auto pem = env.pem("p11-rsa", 1).string();
    env.tool("--sign -m SHA256-RSA-PKCS " + id_arg("p11-rsa:v1") + " -i " + msg.string() + " -o " + (d / "sig").string());
    CHECK(env.run("openssl dgst -sha256 -verify " + pem + " -signature " + (d / "sig").string() + " " + msg.string(), &out) == 0);
    // CKM_RSA_PKCS over a SHA-256 DigestInfo the caller built: the same signature as above
    std::string digest_info("\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20", 19);
    REQUIRE(env.run("openssl dgst -sha256 -binary -out " + (d / "h").string() + " " + msg.string()) == 0);
    auto di = env.file("di", digest_info + read_file(d / "h"));
    env.tool("--sign -m RSA-PKCS " + id_arg("p11-rsa:v1") + " -i " + di.string() + " -o " + (d / "raw").string());
    CHECK(read_file(d / "raw") == read_file(d / "sig"));  // PKCS#1 v1.5 is deterministic
    env.tool("--sign -m SHA384-RSA-PKCS-PSS " + id_arg("p11-rsa:v1") + " -i " + msg.string() + " -o " + (d / "pss").string());
    CHECK(env.run("openssl dgst -sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48 -verify " + pem + " -signature " +
                  (d / "pss").string() + " " + msg.string(), &out) == 0);
    env.tool("--sign -m RSA-PKCS-PSS --hash-algorithm SHA256 --mgf MGF1-SHA256 " + id_arg("p11-rsa:v1") + " -i " +
             (d / "h").string() + " -o " + (d / "pssraw").string());
    CHECK(env.run("openssl pkeyutl -verify -pubin -inkey " + pem + " -in " + (d / "h").string() + " -sigfile " +
                  (d / "pssraw").string() + " -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32", &out) == 0);
    auto v = env.tool("--verify -m SHA384-RSA-PKCS-PSS " + id_arg("p11-rsa:v1") + " -i " + msg.string() + " --signature-file " +
                      (d / "pss").string());
    CHECK(v.find("Signature is valid") != std::string::npos);
    // PSS parameters the broker cannot honour (a salt shorter than the hash) are refused
    CHECK(env.run("pkcs11-tool --module " + module_path + " --sign -m SHA256-RSA-PKCS-PSS --salt-len 20 " + id_arg("p11-rsa:v1") +
                  " -i " + msg.string() + " -o " + (d / "bad").string(), &out) != 0);
    CHECK_MESSAGE(out.find("CKR_MECHANISM_PARAM_INVALID") != std::string::npos, out);
  }
  SUBCASE("EdDSA (Ed25519) over the message") {
    env.tool("--sign -m EDDSA " + id_arg("p11-ed:v1") + " -i " + msg.string() + " -o " + (d / "sig").string());
    CHECK(fs::file_size(d / "sig") == 64);
    CHECK(env.run("openssl pkeyutl -verify -pubin -inkey " + env.pem("p11-ed", 1).string() + " -rawin -in " + msg.string() +
                  " -sigfile " + (d / "sig").string(), &out) == 0);
  }
  SUBCASE("HMAC: the same MAC as the broker's /transit/hmac, and C_Verify accepts it") {
    env.tool("--sign -m SHA256-HMAC " + id_arg("p11-hmac:v1") + " -i " + msg.string() + " -o " + (d / "mac").string());
    auto c = env.b.broker->unix_client();
    auto r = call(c, "POST", "/v1/transit/hmac/p11-hmac/sha2-256", {{"input", b64(read_file(msg))}});
    REQUIRE(r.status == 200);
    std::string text(r.data().at("hmac").as_string());
    CHECK(read_file(d / "mac") == unb64(text.substr(text.rfind(':') + 1)));
    auto v = env.tool("--verify -m SHA256-HMAC " + id_arg("p11-hmac:v1") + " -i " + msg.string() + " --signature-file " +
                      (d / "mac").string());
    CHECK(v.find("Signature is valid") != std::string::npos);
  }
}

TEST_CASE("pkcs11-tool: random bytes from the HSMs, key generation as broker keys, destroy only with deletion_allowed") {
  front_env env;
  auto d = env.dir.path;
  auto c = env.b.broker->unix_client();
  env.tool("--generate-random 4096 -o " + (d / "rnd").string());
  CHECK(fs::file_size(d / "rnd") == 4096);

  std::string name = "p11-gen-" + std::to_string(::getpid());
  env.tool("--keypairgen --key-type EC:prime256v1 --usage-sign --label " + name);
  auto key = call(c, "GET", "/v1/transit/keys/" + name);
  REQUIRE(key.status == 200);
  CHECK(key.data().at("type").as_string() == "ecdsa-p256");
  auto msg = env.file("msg", "freshly generated");
  env.tool("--sign -m ECDSA-SHA256 " + id_arg(name + ":v1") + " -i " + msg.string() + " -o " + (d / "sig").string() +
           " --signature-format openssl");
  std::string out;
  CHECK(env.run("openssl dgst -sha256 -verify " + env.pem(name, 1).string() + " -signature " + (d / "sig").string() + " " +
                msg.string(), &out) == 0);
  // the name is taken now; and a template asking for what a broker key is not is refused
  CHECK(env.run("pkcs11-tool --module " + module_path + " --keypairgen --key-type EC:prime256v1 --usage-sign --label " + name, &out) != 0);
  CHECK(env.run("pkcs11-tool --module " + module_path + " --keypairgen --key-type EC:prime256v1 --usage-derive --label " + name + "-x", &out) != 0);
  CHECK_MESSAGE(out.find("CKR_ATTRIBUTE_VALUE_INVALID") != std::string::npos, out);
  CHECK(call(c, "GET", "/v1/transit/keys/" + name + "-x").status == 404);
  env.tool("--keypairgen --key-type rsa:2048 --usage-sign --label " + name + "-rsa");
  CHECK(call(c, "GET", "/v1/transit/keys/" + name + "-rsa").data().at("type").as_string() == "rsa-2048");
  env.tool("--keygen --key-type AES:16 --sensitive --private --label " + name + "-aes");
  CHECK(call(c, "GET", "/v1/transit/keys/" + name + "-aes").data().at("type").as_string() == "aes128-gcm96");

  // C_DestroyObject: CKR_ACTION_PROHIBITED until the key's deletion_allowed is set
  CHECK(env.run("pkcs11-tool --module " + module_path + " --delete-object --type privkey " + id_arg(name + ":v1"), &out) != 0);
  CHECK(call(c, "GET", "/v1/transit/keys/" + name).status == 200);
  REQUIRE(call(c, "POST", "/v1/transit/keys/" + name + "/config", {{"deletion_allowed", true}}).status == 200);
  env.tool("--delete-object --type privkey " + id_arg(name + ":v1"));
  CHECK(call(c, "GET", "/v1/transit/keys/" + name).status == 404);
}

TEST_CASE("OpenSSL through libp11's engine: a self-signed certificate with the key as pkcs11:object=NAME verifies") {
  front_env env;
  auto d = env.dir.path;
  auto cnf = env.file("openssl.cnf",
                      "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n[engine_section]\n"
                      "pkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n"
                      "dynamic_path = /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so\nMODULE_PATH = " + module_path + "\ninit = 0\n");
  for (auto [key, version] : {std::pair{"p11-ec", 2}, {"p11-rsa", 1}}) {
    CAPTURE(key);
    auto cert = d / (std::string(key) + ".crt");
    std::string out;
    int rc = env.run("OPENSSL_CONF=" + cnf.string() + " openssl req -new -x509 -engine pkcs11 -keyform engine -key " +
                     quoted(std::string("pkcs11:object=") + key + ";type=private") + " -subj /CN=" + key + " -days 1 -out " +
                     cert.string(), &out);
    REQUIRE_MESSAGE(rc == 0, out);
    CHECK(env.run("openssl verify -CAfile " + cert.string() + " " + cert.string(), &out) == 0);
    // the certificate carries the latest version's public key: the label alone names the latest
    CHECK(env.run("openssl x509 -in " + cert.string() + " -noout -pubkey | cmp - " + env.pem(key, version).string(), &out) == 0);
  }
}

TEST_CASE("HSM_BROKER_PKCS11_CERTS=1: a self-signed certificate object per asymmetric key version, signed by that key") {
  front_env env;
  ::setenv("HSM_BROKER_PKCS11_CERTS", "1", 1);
  auto cert = env.dir.path / "cert.der";
  env.tool("--read-object --type cert " + id_arg("p11-rsa:v1") + " -o " + cert.string());
  ::unsetenv("HSM_BROKER_PKCS11_CERTS");
  std::string out;
  REQUIRE(env.run("openssl x509 -inform der -in " + cert.string() + " -out " + (env.dir.path / "cert.pem").string(), &out) == 0);
  auto pem = (env.dir.path / "cert.pem").string();
  CHECK_MESSAGE(env.run("openssl verify -CAfile " + pem + " " + pem, &out) == 0, out);  // its signature is the HSM key's
  CHECK(env.run("openssl x509 -in " + pem + " -noout -subject", &out) == 0);
  CHECK_MESSAGE(out.find("CN = p11-rsa:v1") != std::string::npos, out);
  CHECK(env.run("openssl x509 -in " + pem + " -noout -pubkey | cmp - " + env.pem("p11-rsa", 1).string(), &out) == 0);
  auto objects = env.tool("-O");  // without the variable: no certificate objects
  CHECK(objects.find("Certificate Object") == std::string::npos);
}

TEST_CASE("Java SunPKCS11: keytool lists the keys; a Java program signs in a loop with an HSM key, Java verifies") {
  front_env env;
  std::string out;
  if (env.run("command -v javac && command -v keytool", &out) != 0) {
    MESSAGE("no JDK (default-jdk-headless): Java checks skipped");
    return;
  }
  auto cfg = env.file("pkcs11.cfg", "name = hsmb\nlibrary = " + module_path + "\nslot = 0\n");
  const std::string certs = "HSM_BROKER_PKCS11_CERTS=1 ";  // Java's keystore shows private keys with a certificate only
  int rc = env.run(certs + "keytool -list -keystore NONE -storetype PKCS11 -addprovider SunPKCS11 -providerArg " + cfg.string() +
                   " -storepass anything", &out);
  REQUIRE_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.find("p11-ec384, PrivateKeyEntry") != std::string::npos, out);
  CHECK_MESSAGE(out.find("p11-rsa, PrivateKeyEntry") != std::string::npos, out);
  CHECK_MESSAGE(out.find("p11-hmac, SecretKeyEntry") != std::string::npos, out);
  CHECK_MESSAGE(out.find("p11-aes, SecretKeyEntry") != std::string::npos, out);
  auto classes = env.dir.path / "classes";
  REQUIRE(env.run("javac -d " + classes.string() + " " + std::string(HSMB_JAVA_DIR) + "/HsmbSign.java", &out) == 0);
  rc = env.run(certs + "java -cp " + classes.string() + " HsmbSign " + cfg.string() + " anything p11-ec384 p11-hmac 300", &out);
  REQUIRE_MESSAGE(rc == 0, out);
  auto f = fields(out);
  CHECK(f["signed"] == "300");
  CHECK_MESSAGE(f["failures"] == "0", out);
  auto c = env.b.broker->unix_client();
  auto r = call(c, "POST", "/v1/transit/hmac/p11-hmac/sha2-256", {{"input", b64("message")}});
  std::string text(r.data().at("hmac").as_string());
  CHECK(f["mac_hex"] == hex(unb64(text.substr(text.rfind(':') + 1))));
}

TEST_CASE("p11_app: fork rules, the application's mutex callbacks, AES-GCM with the broker's nonce") {
  front_env env;
  std::string out;
  SUBCASE("a forked child sees the module uninitialised until it calls C_Initialize; the parent is unaffected") {
    REQUIRE(env.run(p11_app + " " + module_path + " fork p11-ec", &out) == 0);
    auto f = fields(out);
    CHECK_MESSAGE(f["child_before_init"] == "0x190", out);  // CKR_CRYPTOKI_NOT_INITIALIZED
    CHECK(f["child_init"] == "0x0");
    CHECK(f["child_after_init"] == "0x0");
    CHECK(f["parent_after_fork"] == "0x0");
  }
  SUBCASE("mutex callbacks without CKF_OS_LOCKING_OK are used; four threads sign; half a set is CKR_ARGUMENTS_BAD") {
    REQUIRE(env.run(p11_app + " " + module_path + " mutexes p11-ec", &out) == 0);
    auto f = fields(out);
    CHECK_MESSAGE(std::stoi(f["app_locks"]) > 200, out);
    CHECK(f["thread_failures"] == "0");
    CHECK(f["half_callbacks"] == "0x7");
  }
  SUBCASE("multi-part sign and verify, the length query, a short buffer keeps the operation") {
    REQUIRE(env.run(p11_app + " " + module_path + " multipart p11-ec", &out) == 0);
    auto f = fields(out);
    CHECK_MESSAGE(f["length"] == "64", out);
    CHECK(f["too_small"] == "0x150");  // CKR_BUFFER_TOO_SMALL
    CHECK(f["small_len"] == "64");
    CHECK(f["sig_len"] == "64");
    CHECK(f["verify_single"] == "0x0");
    CHECK(f["verify_multi"] == "0x0");
    CHECK(f["verify_bad"] == "0xc0");        // CKR_SIGNATURE_INVALID
    CHECK(f["sign_after_final"] == "0x91");  // CKR_OPERATION_NOT_INITIALIZED
  }
  SUBCASE("AES-GCM: the nonce comes back in the IV buffer, decrypt round-trips, a tampered tag and a caller's IV are refused") {
    REQUIRE(env.run(p11_app + " " + module_path + " gcm p11-aes", &out) == 0);
    auto f = fields(out);
    CHECK_MESSAGE(f["round_trip"] == "1", out);
    CHECK(f["nonce_returned"] == "1");
    CHECK(f["ciphertext_len"] == "30");  // 14 bytes and the 16-byte tag
    CHECK(f["tampered"] == "0x40");      // CKR_ENCRYPTED_DATA_INVALID
    CHECK(f["caller_iv"] == "0x71");     // CKR_MECHANISM_PARAM_INVALID
    CHECK(f["short_tag"] == "0x71");
  }
}

namespace {

std::string sha256_hex(const std::string& s) {
  unsigned char d[32];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), d, &n, EVP_sha256(), nullptr);
  return hex(std::string(reinterpret_cast<char*>(d), n));
}

}  // namespace

TEST_CASE("callers' policies apply to PKCS#11 callers: the socket peer, HSM_BROKER_TOKEN, or a token given as the PIN") {
  const std::string signer = "signer-token-0123456789";
  std::string auth = "auth:\n  tokens:\n    - { name: signer, sha256: \"" + sha256_hex(signer) +
                     "\", policies: [signer] }\n  unix:\n    - { uid: " + std::to_string(::getuid()) +
                     ", policies: [keeper] }\npolicies:\n  signer:\n"
                     "    - { path: \"transit/keys/pol-*\", capabilities: [read] }\n"
                     "    - { path: \"transit/sign/pol-a\", capabilities: [update] }\n"
                     "    - { path: \"transit/sign/pol-a/*\", capabilities: [update] }\n"
                     "  keeper:\n    - { path: \"transit/keys\", capabilities: [list] }\n"
                     "    - { path: \"transit/keys/*\", capabilities: [create, read] }\n";
  single_member_broker b(auth);
  auto c = b.broker->unix_client();
  for (auto name : {"pol-a", "pol-b"}) REQUIRE(call(c, "POST", std::string("/v1/transit/keys/") + name, {{"type", "ecdsa-p256"}}).status == 200);
  temp_dir dir("hsmb-p11-policy");
  auto msg = dir.path / "msg";
  write_file(msg, "policy");
  auto sign = [&](const std::string& key, const std::string& login, const std::string& env = "") {
    std::string out;
    int rc = run_command(env + " HSM_BROKER_SOCKET=" + b.broker->socket_path() + " pkcs11-tool --module " + module_path + " " +
                             login + " --sign -m ECDSA-SHA256 " + id_arg(key + ":v1") + " -i " + msg.string() + " -o " +
                             (dir.path / "sig").string(), &out);
    return std::pair{rc, out};
  };
  auto [rc, out] = sign("pol-a", "");  // the peer may see keys, not sign
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("CKR_USER_NOT_LOGGED_IN") != std::string::npos, out);
  std::tie(rc, out) = sign("pol-a", "--login --pin " + signer);
  CHECK_MESSAGE(rc == 0, out);
  std::tie(rc, out) = sign("pol-b", "--login --pin " + signer);  // logged in, but not for this key
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("CKR_KEY_FUNCTION_NOT_PERMITTED") != std::string::npos, out);
  std::tie(rc, out) = sign("pol-a", "--login --pin not-a-token");
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("CKR_PIN_INCORRECT") != std::string::npos, out);
  std::tie(rc, out) = sign("pol-a", "", "HSM_BROKER_TOKEN=" + signer);
  CHECK_MESSAGE(rc == 0, out);
}
