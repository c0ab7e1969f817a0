// The auth: and policies: sections: the contract's example loads; mistakes name their key path;
// identity order and Unix rules on a built authenticator; the systemd unit from a cgroup file.
#include <doctest/doctest.h>

#include <string>

#include "api/auth/authenticator.h"
#include "api/auth/peer_unit.h"
#include "broker/config.h"

using namespace hsmb;
using namespace hsmb::api;

namespace {

const std::string members = R"(
listen: { unix: { path: /tmp/x.sock } }
members:
  - { name: hsm-a, module: /lib/m.so, token_label: a, pin: { value: "1" } }
)";
// sha256("s3cret")
const std::string secret_hash = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0";

const std::string good = members + R"(
auth:
  tokens:
    - { name: billing-app, sha256: ")" + secret_hash + R"(", policies: [billing] }
  unix:
    - { uid: 1001, policies: [billing] }
    - { user: root, gid: 0, policies: [admin], rate: { per_second: 50, burst: 100 } }
    - { unit: billing.service, policies: [] }
  certs:
    - { uri_san: "spiffe://example.org/ns/pay/sa/billing", policies: [billing] }
    - { subject_cn: ops, policies: [admin] }
  require_request_header: true
policies:
  billing:
    - { path: "transit/encrypt/billing-*", capabilities: [update] }
    - { path: "transit/decrypt/billing-*", capabilities: [update] }
  admin:
    - { path: "*", capabilities: [create, read, update, delete, list, sudo] }
)";

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml);
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the contract's auth and policies load") {
  auto c = parse_config(good);
  REQUIRE(c.auth);
  REQUIRE(c.auth->tokens.size() == 1);
  CHECK(c.auth->tokens[0].sha256 == secret_hash);
  REQUIRE(c.auth->unix_peers.size() == 3);
  CHECK(c.auth->unix_peers[0].uid == 1001u);
  CHECK(c.auth->unix_peers[1].uid == 0u);
  CHECK(c.auth->unix_peers[1].gid == 0u);
  CHECK(c.auth->unix_peers[1].rate->burst == 100);
  CHECK(c.auth->unix_peers[2].unit == "billing.service");
  CHECK(c.auth->certs.size() == 2);
  CHECK(c.auth->require_request_header);
  CHECK(c.auth->policies.at("admin")[0].capabilities == 63);
  CHECK_FALSE(parse_config(members).auth);
}

TEST_CASE("auth mistakes name their key path") {
  auto with = [](std::string auth, std::string policies = "policies: { p: [] }\n") { return members + auth + policies; };
  CHECK(error_of(with("auth: { tokenz: [] }\n")).find("auth.tokenz: unknown key") != std::string::npos);
  CHECK(error_of(with("auth: { tokens: [ { name: a, sha256: abc, policies: [] } ] }\n")).find("auth.tokens[0].sha256") != std::string::npos);
  CHECK(error_of(with("auth: { tokens: [ { name: a, sha256: \"" + secret_hash + "\" } ] }\n")).find("auth.tokens[0].policies: required") != std::string::npos);
  CHECK(error_of(with("auth: { unix: [ { uid: 1, policies: [nope] } ] }\n")).find("auth.unix[0].policies[0]: no policy \"nope\"") != std::string::npos);
  CHECK(error_of(with("auth: { unix: [ { user: no-such-user-hsmb, policies: [] } ] }\n")).find("auth.unix[0].user: no such user") != std::string::npos);
  CHECK(error_of(with("auth: { unix: [ { policies: [] } ] }\n")).find("auth.unix[0]: give at least one") != std::string::npos);
  CHECK(error_of(with("auth: { unix: [ { unit: foo, policies: [] } ] }\n")).find("auth.unix[0].unit") != std::string::npos);
  CHECK(error_of(with("auth: { certs: [ { uri_san: a, subject_cn: b, policies: [] } ] }\n")).find("auth.certs[0]: give exactly one") != std::string::npos);
  CHECK(error_of(with("auth: { unix: [ { uid: 1, policies: [], rate: { per_second: 0 } } ] }\n")).find("auth.unix[0].rate.per_second") != std::string::npos);
  CHECK(error_of(with("auth: { require_request_header: maybe }\n")).find("auth.require_request_header") != std::string::npos);
  CHECK(error_of(with("auth: {}\n", "policies: { p: [ { path: a, capabilities: [write] } ] }\n")).find("policies.p[0].capabilities[0]: unknown capability \"write\"") != std::string::npos);
  CHECK(error_of(with("auth: {}\n", "policies: { p: [ { path: \"a*b\", capabilities: [read] } ] }\n")).find("policies.p[0].path") != std::string::npos);
  CHECK(error_of(with("auth: {}\n", "policies: { p: [ { path: \"/v1/a\", capabilities: [read] } ] }\n")).find("policies.p[0].path") != std::string::npos);
  CHECK(error_of(with("auth: {}\n", "policies: { p: [ { path: a, capabilities: [read], x: 1 } ] }\n")).find("policies.p[0].x: unknown key") != std::string::npos);
  CHECK(error_of(members + "policies: { p: [] }\n").find("policies: given without an auth section") != std::string::npos);
}

TEST_CASE("identity: a token first, never falling back; then the Unix peer's first matching rule") {
  auto cfg = parse_config(good);
  authenticator auth(*cfg.auth);
  request req;
  peer_identity root{0, 0, 1};
  req.peer = root;

  auto who = auth.identify(req);
  REQUIRE(who);
  CHECK(who->who.kind == caller_kind::unix_peer);
  CHECK(who->who.display_name == "unix-user-root-gid-0");
  CHECK(who->rights->allows("transit/keys/k", vault_capability::del));

  req.vault_token = "s3cret";
  who = auth.identify(req);
  REQUIRE(who);
  CHECK(who->who.kind == caller_kind::token);
  CHECK(who->who.display_name == "token-billing-app");
  CHECK(who->rights->allows("transit/encrypt/billing-a", vault_capability::update));
  CHECK_FALSE(who->rights->allows("transit/keys/k", vault_capability::del));
  CHECK(who->rights->allows("auth/token/lookup-self", vault_capability::read));  // Vault's default policy

  req.vault_token = "";
  req.authorization = "Bearer s3cret";
  CHECK(auth.identify(req)->who.kind == caller_kind::token);
  req.authorization = "Bearer wrong";
  CHECK_FALSE(auth.identify(req));  // unknown: refused, not the root peer
  req.authorization = "";

  req.peer = peer_identity{1001, 1001, 1};
  CHECK(auth.identify(req)->who.display_name == "unix-uid-1001");
  req.peer = peer_identity{4242, 4242, 1};
  auto nobody = auth.identify(req);
  CHECK(nobody->who.kind == caller_kind::nobody);
  CHECK(nobody->rights == nullptr);
  CHECK(nobody->who.uid == 4242u);

  tls_peer cert{"CN=ops,O=Example", "ops", {}};
  req.peer.reset();
  req.tls = &cert;
  CHECK(auth.identify(req)->who.display_name == "cert-ops");
  CHECK(auth.identify(req)->who.cert_subject == "CN=ops,O=Example");
}

TEST_CASE("the systemd unit from /proc/<pid>/cgroup") {
  CHECK(unit_from_cgroup("0::/system.slice/billing.service\n") == "billing.service");
  CHECK(unit_from_cgroup("0::/system.slice/billing.service/worker\n") == "billing.service");
  CHECK(unit_from_cgroup("0::/system.slice/billing.service/evil.service\n") == "billing.service");
  CHECK(unit_from_cgroup("0::/user.slice/user-1000.slice/user@1000.service/app.slice/billing.service\n").empty());
  CHECK(unit_from_cgroup("0::/\n").empty());
  CHECK(unit_from_cgroup("12:cpu:/x\n1:name=systemd:/system.slice/old.service\n") == "old.service");
  // systemd in legacy mode: the kernel still prints the unified root, which names nothing.
  CHECK(unit_from_cgroup("9:name=systemd:/system.slice/legacy.service\n1:cpu:/\n0::/\n") == "legacy.service");
  // Hybrid mode: the unified hierarchy, which systemd manages, decides.
  CHECK(unit_from_cgroup("1:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n") == "b.service");
  CHECK(unit_from_cgroup("1:name=systemd:/system.slice/a.service\n0::/user.slice/user-1000.slice\n").empty());
  // A cgroup's name may hold colons: a path that spells systemd's line is not systemd's line.
  CHECK(unit_from_cgroup("5:cpu,cpuacct:/user/x:name=systemd:/system.slice/billing.service\n"
                         "1:name=systemd:/user.slice/user-1000.slice/session-1.scope\n0::/\n").empty());
  CHECK(unit_from_cgroup("5:cpu:/x:0::/system.slice/billing.service\n0::/\n").empty());
  CHECK(unit_from_cgroup("0::/system.slice/a:b.service\n") == "a:b.service");
  CHECK(unit_from_cgroup("").empty());
}
