// The TCP listener's TLS pieces (api/http/tls_context.h, tls_peer.h) on certificates made at test
// time by tests/lib/make_tls_certs.sh: a client certificate's identity, and bad files refused by name.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "api/http/tls_context.h"
#include "api/http/tls_peer.h"
#include "common/config_error.h"

using namespace hsmb;

namespace {

struct test_certs {
  std::string dir;
  test_certs() {
    char tmpl[] = "/tmp/hsmb-tls-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    dir = tmpl;
    REQUIRE(std::system(("/bin/bash " HSMB_MAKE_TLS_CERTS " " + dir + " >/dev/null 2>&1").c_str()) == 0);
  }
  ~test_certs() { std::filesystem::remove_all(dir); }
  std::string path(const std::string& name) const { return dir + "/" + name; }
  std::string text(const std::string& name) const {
    std::ifstream in(path(name));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

std::string load_error(const api::tls_files& files) {
  try {
    api::tls_context::load(files);
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a client certificate's identity: RFC 2253 subject, CN, URI SANs") {
  test_certs certs;
  auto peer = api::tls_peer_from_pem(certs.text("client.crt"));
  REQUIRE(peer);
  CHECK(peer->subject == "CN=billing,OU=pay,O=Example");
  CHECK(peer->subject_cn == "billing");
  REQUIRE(peer->uri_sans.size() == 1);
  CHECK(peer->uri_sans[0] == "spiffe://example.org/ns/pay/sa/billing");
  auto server = api::tls_peer_from_pem(certs.text("server.crt"));
  REQUIRE(server);
  CHECK(server->uri_sans.empty());  // an IP and a DNS SAN, no URI
  CHECK(!api::tls_peer_from_pem("not a certificate"));
}

TEST_CASE("TLS files: loaded with and without client_ca; a bad one is named by its key") {
  test_certs certs;
  auto plain = api::tls_context::load({certs.path("server.crt"), certs.path("server.key"), ""});
  CHECK(!plain->requires_client_cert());
  auto mutual = api::tls_context::load({certs.path("server.crt"), certs.path("server.key"), certs.path("ca.crt")});
  CHECK(mutual->requires_client_cert());

  auto missing = load_error({certs.path("server.crt"), certs.path("nope.key"), ""});
  CHECK(missing.find("listen.http.tls.key: cannot use " + certs.path("nope.key")) == 0);
  CHECK(load_error({certs.path("nope.crt"), certs.path("server.key"), ""}).find("listen.http.tls.cert: ") == 0);
  CHECK(load_error({certs.path("server.key"), certs.path("server.key"), ""}).find("listen.http.tls.cert: ") == 0);
  CHECK(load_error({certs.path("server.crt"), certs.path("server.crt"), ""}).find("listen.http.tls.key: ") == 0);
  auto mismatch = load_error({certs.path("server.crt"), certs.path("client.key"), ""});
  CHECK(mismatch == "listen.http.tls.key: cannot use " + certs.path("client.key") + ": does not match the certificate");
  CHECK(load_error({certs.path("server.crt"), certs.path("server.key"), certs.path("server.key")})
            .find("listen.http.tls.client_ca: ") == 0);
  CHECK(load_error({certs.path("server.crt"), certs.path("server.key"), certs.path("nope.crt")})
            .find("listen.http.tls.client_ca: ") == 0);
}
