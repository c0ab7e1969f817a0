// TLS and mutual TLS on the TCP listener (listen.http.tls), end to end: a real broker (and a
// supervisor) on a SoftHSM2 token, driven by curl, openssl s_client and hvac, on certificates
// made at test time by tests/lib/make_tls_certs.sh. The Unix socket stays plain.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/broker_fixture.h"

using namespace hsmb::test;
using namespace std::chrono_literals;

namespace {

struct test_certs {
  std::string dir;
  test_certs() {
    char tmpl[] = "/tmp/hsmb-tls-it-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    dir = tmpl;
    REQUIRE(run_command("/bin/bash " HSMB_MAKE_TLS_CERTS " " + dir) == 0);
  }
  ~test_certs() { std::filesystem::remove_all(dir); }
  std::string operator()(const std::string& name) const { return dir + "/" + name; }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The generated config's TCP listener, given `tls` (broker_process writes a plain one).
void set_tls(broker_process& b, const std::string& tls) {
  auto text = read_file(b.config_path());
  std::string plain = "  http: { address: \"127.0.0.1:" + std::to_string(b.http_port()) + "\" }\n";
  auto at = text.find(plain);
  REQUIRE(at != std::string::npos);
  text.replace(at, plain.size(),
               "  http: { address: \"127.0.0.1:" + std::to_string(b.http_port()) + "\", tls: " + tls + " }\n");
  std::ofstream(b.config_path()) << text;
}

member_spec member_of(const softhsm_token& t) {
  return {"hsm-a", softhsm_token::module_path(), t.label(), t.pin(), {{"SOFTHSM2_CONF", t.conf_path()}}};
}

std::string health_url(const broker_process& b, const char* scheme = "https") {
  return std::string(scheme) + "://127.0.0.1:" + std::to_string(b.http_port()) + "/v1/sys/health";
}

// curl's HTTP status ("200"), or "000" when no response came (refused handshake, ...).
std::string curl_status(const std::string& args) {
  std::string out;
  run_command("curl -s -o /dev/null -w '%{http_code}' --max-time 10 " + args + " 2>/dev/null", &out);
  return out;
}

// s_client's exit status for one protocol version; `-cipher` lets OpenSSL 3 offer TLS 1.1 at all.
int s_client(const broker_process& b, const test_certs& certs, const std::string& version) {
  return run_command("openssl s_client -connect 127.0.0.1:" + std::to_string(b.http_port()) + " " + version +
                     " -cipher 'DEFAULT:@SECLEVEL=0' -CAfile " + certs("ca.crt") + " -verify_return_error </dev/null");
}

// The serial number of the certificate the server presents ("serial=1092").
std::string served_serial(const broker_process& b, const test_certs& certs) {
  std::string out;
  run_command("openssl s_client -connect 127.0.0.1:" + std::to_string(b.http_port()) + " -CAfile " + certs("ca.crt") +
                  " </dev/null 2>/dev/null | openssl x509 -noout -serial",
              &out);
  return out.substr(0, out.find('\n'));
}

int hvac_health(const broker_process& b, const test_certs& certs, bool with_cert) {
  std::string cert = with_cert ? ", cert=('" + certs("client.crt") + "', '" + certs("client.key") + "')" : "";
  std::string script = "import hvac\nc = hvac.Client(url='https://127.0.0.1:" + std::to_string(b.http_port()) +
                       "', verify='" + certs("ca.crt") + "'" + cert +
                       ")\nr = c.sys.read_health_status(method='GET')\nassert r['initialized'], r\n";
  std::ofstream(certs("health_check.py")) << script;
  std::string out;
  int status = run_command("/usr/bin/python3 " + certs("health_check.py"), &out);
  if (status != 0) MESSAGE("hvac: " << out.substr(out.size() > 600 ? out.size() - 600 : 0));
  return status;
}

}  // namespace

TEST_CASE("TLS on the TCP listener: https with the CA works, plain http and TLS 1.1 do not; Unix stays plain") {
  test_certs certs;
  softhsm_token t("hsm-a");
  broker_process b({member_of(t)});
  set_tls(b, "{ cert: " + certs("server.crt") + ", key: " + certs("server.key") + " }");
  b.start();
  CHECK(curl_status("--cacert " + certs("ca.crt") + " " + health_url(b)) == "200");
  CHECK(curl_status(health_url(b, "http")) == "000");
  CHECK(curl_status(health_url(b)) == "000");  // a client that does not trust the CA gives up
  CHECK(s_client(b, certs, "-tls1_2") == 0);
  CHECK(s_client(b, certs, "-tls1_1") != 0);
  CHECK(hvac_health(b, certs, false) == 0);
  auto unix_client = b.unix_client();
  CHECK(unix_client.request("GET", "/v1/sys/health", "").status == 200);
  CHECK(b.running());
}

TEST_CASE("mutual TLS: without a client certificate, or with one from another CA, the handshake is refused") {
  test_certs certs;
  softhsm_token t("hsm-a");
  broker_process b({member_of(t)});
  b.set_env("HSMB_LOG_LEVEL", "debug");
  set_tls(b, "{ cert: " + certs("server.crt") + ", key: " + certs("server.key") + ", client_ca: " + certs("ca.crt") + " }");
  b.start();
  auto base = "--cacert " + certs("ca.crt") + " ";
  CHECK(curl_status(base + health_url(b)) == "000");
  CHECK(curl_status(base + "--cert " + certs("other_client.crt") + " --key " + certs("other_client.key") + " " +
                    health_url(b)) == "000");
  CHECK(curl_status(base + "--cert " + certs("client.crt") + " --key " + certs("client.key") + " " + health_url(b)) ==
        "200");
  CHECK(hvac_health(b, certs, true) == 0);
  CHECK(hvac_health(b, certs, false) != 0);
  // The broker saw who called: subject and SPIFFE ID (logged at debug only).
  auto log = b.log_tail(1 << 20);
  CHECK(log.find("is \"CN=billing,OU=pay,O=Example\" spiffe://example.org/ns/pay/sa/billing") != std::string::npos);
  CHECK(log.find("BEGIN") == std::string::npos);  // no PEM, no key bytes
  CHECK(b.running());  // TLS failures are the client's: the broker serves on
  auto unix_client = b.unix_client();
  CHECK(unix_client.request("GET", "/v1/sys/health", "").status == 200);
}

TEST_CASE("a bad TLS file is a configuration error naming the key, in --check and at start") {
  test_certs certs;
  softhsm_token t("hsm-a");
  broker_process b({member_of(t)});
  set_tls(b, "{ cert: " + certs("server.crt") + ", key: " + certs("missing.key") + " }");
  std::string out;
  CHECK(run_command(std::string(HSMB_BIN_DIR) + "/hsm-broker --check --config " + b.config_path(), &out) == 2);
  CHECK(out.find("listen.http.tls.key: cannot use " + certs("missing.key")) != std::string::npos);
  auto text = read_file(b.config_path());
  text.replace(text.find(certs("missing.key")), certs("missing.key").size(), certs("client.key"));
  std::ofstream(b.config_path()) << text;
  CHECK_THROWS(b.start(5s));  // exits during start-up
  CHECK(b.log_tail().find("listen.http.tls.key: cannot use " + certs("client.key") + ": does not match the certificate") !=
        std::string::npos);
}

TEST_CASE("the supervisor passes the TCP socket on and never reads the key; SIGHUP takes a new certificate") {
  test_certs certs;
  softhsm_token t("hsm-a");
  broker_process s({member_of(t)});
  s.use_supervisor();
  s.set_env("HSMB_LOG_LEVEL", "debug");
  set_tls(s, "{ cert: " + certs("server.crt") + ", key: " + certs("server.key") + " }");
  s.start();
  auto https = "--cacert " + certs("ca.crt") + " " + health_url(s);
  CHECK_MESSAGE(curl_status(https) == "200", s.log_tail());
  auto before = served_serial(s, certs);
  CHECK(before.starts_with("serial="));
  // Rotation: replace the files, SIGHUP; the next generation serves the new certificate.
  REQUIRE(run_command("cd " + certs.dir + " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 4242"
                      " -days 1 -extfile server.ext -out server.crt.new && mv server.crt.new server.crt") == 0);
  s.signal(SIGHUP);
  CHECK(eventually([&] { return served_serial(s, certs) == "serial=1092"; }, 20s));
  CHECK(curl_status(https) == "200");
}

// auth.certs: the client certificate is the caller. Its SPIFFE ID binds the billing policy; a
// certificate of the same CA whose ID binds nothing is refused; a token presented with the
// certificate is the caller instead (DESIGN's order); the Unix peer (root) keeps its own rule.
TEST_CASE("a client certificate is a caller: its policy applies, lookup-self shows it") {
  test_certs certs;
  softhsm_token t("hsm-a");
  const std::string ops_token = "ops-token-0123456789";
  std::string ops_hash;
  REQUIRE(run_command("printf %s " + ops_token + " | sha256sum | cut -c1-64", &ops_hash) == 0);
  ops_hash.resize(64);
  broker_process b({member_of(t)}, R"(auth:
  tokens:
    - { name: ops, sha256: ")" + ops_hash + R"(", policies: [admin] }
  certs:
    - { uri_san: "spiffe://example.org/ns/pay/sa/billing", policies: [billing] }
  unix:
    - { uid: 0, policies: [admin] }
policies:
  billing:
    - { path: "transit/encrypt/billing-*", capabilities: [update] }
  admin:
    - { path: "*", capabilities: [create, read, update, delete, list, sudo] }
)");
  set_tls(b, "{ cert: " + certs("server.crt") + ", key: " + certs("server.key") + ", client_ca: " + certs("ca.crt") + " }");
  b.start();
  auto admin = b.unix_client();
  for (auto name : {"billing-a", "other"})
    REQUIRE(admin.request("POST", std::string("/v1/transit/keys/") + name, R"({"type":"aes256-gcm96"})").status == 200);
  auto as_client = "--cacert " + certs("ca.crt") + " --cert " + certs("client.crt") + " --key " + certs("client.key") + " ";
  auto url = "https://127.0.0.1:" + std::to_string(b.http_port()) + "/v1/";
  auto encrypt = [&](const std::string& key) {
    return curl_status(as_client + "-X POST -d '{\"plaintext\":\"aGVsbG8=\"}' " + url + "transit/encrypt/" + key);
  };
  CHECK(encrypt("billing-a") == "200");
  CHECK(encrypt("other") == "403");
  CHECK(curl_status(as_client + url + "transit/keys/billing-a") == "403");  // read is not granted
  std::string self;
  run_command("curl -s --max-time 10 " + as_client + url + "auth/token/lookup-self", &self);
  CHECK(self.find(R"("kind":"cert")") != std::string::npos);
  CHECK(self.find(R"("cert_subject":"CN=billing,OU=pay,O=Example")") != std::string::npos);
  CHECK(self.find(R"("policies":["billing"])") != std::string::npos);
  CHECK(admin.request("GET", "/v1/transit/keys/other", "").status == 200);
  // A certificate the CA signed, but whose ID no rule binds: no identity, no fallback.
  auto as_stranger = "--cacert " + certs("ca.crt") + " --cert " + certs("stranger.crt") + " --key " + certs("stranger.key") + " ";
  CHECK(curl_status(as_stranger + "-X POST -d '{\"plaintext\":\"aGVsbG8=\"}' " + url + "transit/encrypt/billing-a") == "403");
  CHECK(curl_status(as_stranger + url + "auth/token/lookup-self") == "403");
  // A token with the certificate: the token is the caller.
  std::string as_ops;
  run_command("curl -s --max-time 10 " + as_client + "-H 'X-Vault-Token: " + ops_token + "' " + url + "auth/token/lookup-self", &as_ops);
  CHECK_MESSAGE(as_ops.find(R"("kind":"token")") != std::string::npos, as_ops);
  CHECK(curl_status(as_client + "-H 'X-Vault-Token: " + ops_token + "' " + url + "transit/keys/other") == "200");
}
