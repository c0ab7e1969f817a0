// Callers end to end (README "Callers and policies"): tokens on TCP and on the Unix socket,
// unknown tokens refused, deny over allow, another uid on the Unix socket with its own policy,
// lookup-self, Vault's sys routes, the X-Vault-Request guard, and Vault client libraries.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tests/integration/broker_fixture.h"
#include "tests/integration/token_binding.h"

using namespace hsmb::test;
namespace json = boost::json;

namespace {

const std::string billing_token = "billing-token-0123456789", fenced_token = "fenced-token-0123456789",
                  admin_token = "admin-token-0123456789", noisy_token = "noisy-token-0123456789",
                  quiet_token = "quiet-token-0123456789";

std::string auth_yaml(bool require_header) {
  const std::string rate = ", rate: { per_second: 1, burst: 3 }";
  return "auth:\n  require_request_header: " + std::string(require_header ? "true" : "false") + "\n  tokens:\n" +
         token_binding("billing-app", billing_token, "billing") + token_binding("fenced", fenced_token, "billing, fence") +
         token_binding("admin", admin_token, "admin") + token_binding("noisy", noisy_token, "billing", rate) +
         token_binding("quiet", quiet_token, "billing", rate) + R"(
  unix:
    - { unit: hsmb-test-billing.service, policies: [billing] }
    - { uid: 0, policies: [admin] }
    - { user: nobody, policies: [reader] }
policies:
  billing:
    - { path: "transit/encrypt/billing-*", capabilities: [update] }
    - { path: "transit/decrypt/billing-*", capabilities: [update] }
  fence:
    - { path: "transit/encrypt/billing-*", capabilities: [deny] }
  admin:
    - { path: "*", capabilities: [create, read, update, delete, list, sudo] }
  reader:
    - { path: "transit/keys", capabilities: [list] }
    - { path: "transit/keys/*", capabilities: [read] }
    - { path: "transit/keys/secret", capabilities: [deny] }
)";
}

// A broker with auth; its socket directory and socket open to every uid (the test runs as root).
struct auth_broker : single_member_broker {
  explicit auth_broker(bool require_header) : single_member_broker(auth_yaml(require_header)) {
    ::chmod(broker->dir().c_str(), 0755);
    ::chmod(broker->socket_path().c_str(), 0666);
  }
};

auth_broker& open_broker() {
  static auth_broker b(false);
  return b;
}

json_reply send(hsmb::client::broker_client& c, std::string_view method, std::string_view path, const std::string& token,
                const json::object& body = {}) {
  auto r = c.request(method, path, body.empty() ? std::string() : json::serialize(body), token);
  json_reply out{r.status, nullptr};
  boost::system::error_code ec;
  if (!r.body.empty()) out.body = json::parse(r.body, ec);
  return out;
}

// curl's status line and body; `prefix` runs it as another user ("setpriv ... ").
std::pair<int, std::string> curl(const std::string& prefix, const std::string& args) {
  std::string out;
  run_command(prefix + "curl -s -w '\\n%{http_code}' " + args, &out);
  auto nl = out.rfind('\n');
  if (nl == std::string::npos) return {0, out};
  return {std::atoi(out.c_str() + nl + 1), out.substr(0, nl)};
}

void create_key(const std::string& name) {
  auto unix_root = open_broker().broker->unix_client();
  auto r = send(unix_root, "POST", "/v1/transit/keys/" + name, "", {{"type", "aes256-gcm96"}});
  REQUIRE_MESSAGE(r.status == 200, r.error());
}

json::object plaintext() { return {{"plaintext", b64("hello")}}; }

}  // namespace

TEST_CASE("a token on TCP may do what its policy allows and nothing else") {
  create_key("billing-a");
  create_key("payroll");
  auto tcp = open_broker().broker->tcp_client();
  auto ok = send(tcp, "POST", "/v1/transit/encrypt/billing-a", billing_token, plaintext());
  REQUIRE_MESSAGE(ok.status == 200, ok.error());
  auto ct = std::string(ok.data().at("ciphertext").as_string());
  auto back = send(tcp, "POST", "/v1/transit/decrypt/billing-a", billing_token, {{"ciphertext", ct}});
  CHECK(back.status == 200);
  auto other = send(tcp, "POST", "/v1/transit/encrypt/payroll", billing_token, plaintext());
  CHECK(other.status == 403);
  CHECK(json::serialize(other.body) == R"({"errors":["permission denied"]})");
  CHECK(send(tcp, "LIST", "/v1/transit/keys", billing_token).status == 403);
  CHECK(send(tcp, "GET", "/v1/broker/members", billing_token).status == 403);
  CHECK(send(tcp, "GET", "/metrics", billing_token).status == 403);
  CHECK(send(tcp, "GET", "/metrics", admin_token).status == 200);
  // Authorization: Bearer is the same token.
  auto bearer = curl("", "-X POST -H 'Authorization: Bearer " + billing_token + "' -d '{\"plaintext\":\"aGk=\"}' http://127.0.0.1:" +
                             std::to_string(open_broker().broker->http_port()) + "/v1/transit/encrypt/billing-a");
  CHECK_MESSAGE(bearer.first == 200, bearer.second);
}

// One caller's bucket is its own: the noisy token gets 429 with Retry-After once its burst is
// spent; the quiet token, with the same policy and the same limit, spends its own burst, and the
// billing token, with no limit, is served throughout. In-process calls between the checks keep
// them well inside the second that would refill the noisy bucket.
TEST_CASE("a binding's rate limit: 429 with Retry-After for that caller, the others unaffected") {
  create_key("billing-rate");
  auto url = "http://127.0.0.1:" + std::to_string(open_broker().broker->http_port()) + "/v1/transit/encrypt/billing-rate";
  auto tcp = open_broker().broker->tcp_client();
  auto encrypt = [&](const std::string& token) { return send(tcp, "POST", "/v1/transit/encrypt/billing-rate", token, plaintext()).status; };
  for (int i = 0; i < 3; ++i) CHECK(encrypt(noisy_token) == 200);
  auto limited = curl("", "-D - -X POST -H 'X-Vault-Token: " + noisy_token + "' -d '{\"plaintext\":\"aGk=\"}' " + url);
  CHECK(limited.first == 429);
  CHECK_MESSAGE(limited.second.find("Retry-After: 1") != std::string::npos, limited.second);
  for (int i = 0; i < 3; ++i) CHECK(encrypt(quiet_token) == 200);
  for (int i = 0; i < 10; ++i) CHECK(encrypt(billing_token) == 200);
  CHECK(encrypt(noisy_token) == 429);
  CHECK(encrypt(quiet_token) == 429);  // its own burst spent now, in its own bucket
}

TEST_CASE("no identity: 403 on everything but sys/health and sys/seal-status") {
  auto tcp = open_broker().broker->tcp_client();
  CHECK(send(tcp, "LIST", "/v1/transit/keys", "").status == 403);
  CHECK(send(tcp, "POST", "/v1/transit/encrypt/billing-a", "", plaintext()).status == 403);
  CHECK(send(tcp, "GET", "/v1/auth/token/lookup-self", "").status == 403);
  CHECK(send(tcp, "GET", "/v1/sys/mounts", "").status == 403);
  CHECK(send(tcp, "GET", "/v1/sys/health", "").status == 200);
  CHECK(send(tcp, "GET", "/v1/sys/seal-status", "").status == 200);
}

TEST_CASE("an unknown token is refused even on the Unix socket, where the peer (root) may do everything") {
  auto unix_root = open_broker().broker->unix_client();
  CHECK(send(unix_root, "LIST", "/v1/transit/keys", "").status == 200);
  auto r = send(unix_root, "LIST", "/v1/transit/keys", "no-such-token");
  CHECK(r.status == 403);
  CHECK(r.error() == "permission denied");
  CHECK(send(unix_root, "GET", "/v1/auth/token/lookup-self", "no-such-token").status == 403);
  // A known token on the Unix socket is that token, not the peer.
  CHECK(send(unix_root, "LIST", "/v1/transit/keys", billing_token).status == 403);
}

TEST_CASE("deny overrides allow on the same path") {
  auto tcp = open_broker().broker->tcp_client();
  CHECK(send(tcp, "POST", "/v1/transit/encrypt/billing-a", fenced_token, plaintext()).status == 403);
  CHECK(send(tcp, "POST", "/v1/transit/encrypt/billing-a", billing_token, plaintext()).status == 200);
}

namespace {

// A cgroup system.slice/<unit>, as systemd makes a unit's, removed (with a slice it made) at
// scope exit; its processes must have exited by then.
struct unit_cgroup {
  std::filesystem::path dir;
  bool made_slice = false;
  explicit unit_cgroup(const std::string& base, const std::string& unit) : dir(base + "/system.slice/" + unit) {
    std::error_code ec;
    made_slice = std::filesystem::create_directory(dir.parent_path(), ec);
    std::filesystem::create_directory(dir, ec);
  }
  ~unit_cgroup() {
    std::error_code ec;
    std::filesystem::remove(dir, ec);
    if (made_slice) std::filesystem::remove(dir.parent_path(), ec);
  }
  bool usable() const { return std::filesystem::exists(dir / "cgroup.procs"); }
};

// The hierarchy whose system.slice names a process's unit: the unified one where systemd uses
// it (this process's own "0::" path is not the root), else systemd's v1 name=systemd one (legacy
// mode, as in this test's containers, where the kernel's "0::/" names nothing).
std::string unit_hierarchy() {
  std::ifstream in("/proc/self/cgroup");
  bool unified_used = false;
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("0::")) unified_used = line != "0::/";
  namespace fs = std::filesystem;
  if (!unified_used && fs::exists("/sys/fs/cgroup/systemd/cgroup.procs")) return "/sys/fs/cgroup/systemd";
  if (fs::exists("/sys/fs/cgroup/cgroup.procs")) return "/sys/fs/cgroup";  // pure cgroup v2
  return "/sys/fs/cgroup/unified";                                      // hybrid
}

}  // namespace

// A process of a systemd unit, as systemd places it, in the hierarchy that names its unit. The
// rule for the unit comes before root's, so root in the unit is billing.
TEST_CASE("a unit: rule: a process of that systemd unit gets the unit's policy on the Unix socket") {
  create_key("billing-unit");
  auto base = unit_hierarchy();
  std::pair<int, std::string> self, encrypt, list, outside;  // status and body
  {
    unit_cgroup unit(base, "hsmb-test-billing.service");
    if (!unit.usable()) {
      MESSAGE("no writable cgroup hierarchy at " << base << ": the unit rule is covered by unit_from_cgroup's tests only");
      return;
    }
    auto sock = "--max-time 10 --unix-socket " + open_broker().broker->socket_path() + " http://broker";
    auto in_unit = "sh -c 'echo $$ > " + (unit.dir / "cgroup.procs").string() + " && exec \"$0\" \"$@\"' ";
    self = curl(in_unit, sock + "/v1/auth/token/lookup-self");
    encrypt = curl(in_unit, "-X POST -d '{\"plaintext\":\"aGk=\"}' " + sock + "/v1/transit/encrypt/billing-unit");
    list = curl(in_unit, "-X LIST " + sock + "/v1/transit/keys");
    outside = curl("", "-X LIST " + sock + "/v1/transit/keys");
  }  // the curls have exited: the cgroup goes
  REQUIRE_MESSAGE(self.first == 200, self.second);
  auto data = json::parse(self.second).at("data");
  CHECK(data.at("policies") == json::array{"billing"});
  CHECK(data.at("meta").at("unit") == "hsmb-test-billing.service");
  CHECK_MESSAGE(encrypt.first == 200, encrypt.second);
  CHECK(list.first == 403);     // billing may not list
  CHECK(outside.first == 200);  // root outside the unit is admin
}

TEST_CASE("another uid on the Unix socket gets its own policy") {
  create_key("secret");
  const std::string as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups ";
  auto sock = "--unix-socket " + open_broker().broker->socket_path() + " http://broker";
  auto list = curl(as_nobody, "-X LIST " + sock + "/v1/transit/keys");
  REQUIRE_MESSAGE(list.first == 200, list.second);
  CHECK(list.second.find("billing-a") != std::string::npos);
  CHECK(curl(as_nobody, sock + "/v1/transit/keys/billing-a").first == 200);
  CHECK(curl(as_nobody, sock + "/v1/transit/keys/secret").first == 403);  // deny beside the glob
  CHECK(curl(as_nobody, "-X POST -d '{}' " + sock + "/v1/transit/keys/new-key").first == 403);
  CHECK(curl(as_nobody, "-X POST -d '{\"plaintext\":\"aGk=\"}' " + sock + "/v1/transit/encrypt/billing-a").first == 403);
  auto self = curl(as_nobody, sock + "/v1/auth/token/lookup-self");
  REQUIRE_MESSAGE(self.first == 200, self.second);
  auto data = json::parse(self.second).at("data");
  CHECK(data.at("display_name") == "unix-user-nobody");
  CHECK(data.at("policies") == json::array{"reader"});
  CHECK(data.at("meta").at("kind") == "unix");
  CHECK(data.at("meta").at("uid") == "65534");
  CHECK(data.at("meta").at("gid") == "65534");
  CHECK(data.at("meta").as_object().contains("pid"));
}

TEST_CASE("lookup-self shows the caller, never the token") {
  auto tcp = open_broker().broker->tcp_client();
  auto raw = tcp.request("GET", "/v1/auth/token/lookup-self", "", billing_token);
  REQUIRE(raw.status == 200);
  CHECK(raw.body.find(billing_token) == std::string::npos);
  auto data = json::parse(raw.body).at("data");
  CHECK(data.at("display_name") == "token-billing-app");
  CHECK(data.at("policies") == json::array{"billing"});
  CHECK(data.at("meta").at("kind") == "token");
  CHECK(data.at("ttl") == 0);
  CHECK(data.at("renewable") == false);
  CHECK(data.at("type") == "service");
  auto root = open_broker().broker->unix_client();
  auto peer = send(root, "GET", "/v1/auth/token/lookup-self", "");
  REQUIRE(peer.status == 200);
  CHECK(peer.data().at("display_name") == "unix-uid-0");
  CHECK(peer.data().at("meta").at("uid") == "0");
}

TEST_CASE("Vault's sys routes: seal-status, init, mounts") {
  auto tcp = open_broker().broker->tcp_client();
  auto seal = send(tcp, "GET", "/v1/sys/seal-status", "");
  REQUIRE(seal.status == 200);
  auto& s = seal.body.as_object();
  CHECK(s.at("sealed") == false);
  CHECK(s.at("t") == 1);
  CHECK(s.at("n") == 1);
  CHECK(s.at("progress") == 0);
  CHECK(s.at("initialized") == true);
  CHECK(s.at("type") == "shamir");
  CHECK(s.contains("version"));
  auto init = send(tcp, "GET", "/v1/sys/init", "");
  CHECK(init.status == 200);
  CHECK(init.body.at("initialized") == true);
  CHECK(send(tcp, "GET", "/v1/sys/mounts", billing_token).status == 403);
  auto mounts = send(tcp, "GET", "/v1/sys/mounts", admin_token);
  REQUIRE(mounts.status == 200);
  CHECK(mounts.data().at("transit/").at("type") == "transit");
  CHECK(mounts.body.at("transit/").at("type") == "transit");
}

TEST_CASE("auth.require_request_header: 412 without X-Vault-Request: true") {
  auth_broker guarded(true);
  auto url = "http://127.0.0.1:" + std::to_string(guarded.broker->http_port());
  auto bare = curl("", url + "/v1/sys/health");
  CHECK(bare.first == 412);
  CHECK(bare.second.find("X-Vault-Request") != std::string::npos);
  CHECK(curl("", "-H 'X-Vault-Token: " + admin_token + "' " + url + "/v1/sys/mounts").first == 412);
  CHECK(curl("", "-H 'X-Vault-Request: true' " + url + "/v1/sys/health").first == 200);
  CHECK(curl("", "-H 'X-Vault-Request: true' -H 'X-Vault-Token: " + admin_token + "' " + url + "/v1/sys/mounts").first == 200);
  auto client = guarded.broker->tcp_client();  // hsmctl's client sends the header, as Vault's does
  CHECK(send(client, "GET", "/v1/sys/mounts", admin_token).status == 200);
}

TEST_CASE("hvac: is_authenticated with a good and a bad token") {
  // Debian's python3-hvac (deploy/install-deps.sh) lives in /usr/bin/python3's path, not in a
  // python3 that PATH may name first (pyenv): a missing hvac is a failure, never a skip.
  REQUIRE_MESSAGE(run_command("/usr/bin/python3 -c 'import hvac' 2>/dev/null") == 0,
                  "python3-hvac is not installed (deploy/install-deps.sh installs it)");
  auto url = "http://127.0.0.1:" + std::to_string(open_broker().broker->http_port());
  auto check = [&](const std::string& token) {
    std::string out;
    run_command("/usr/bin/python3 -c 'import hvac,sys; print(hvac.Client(url=sys.argv[1], token=sys.argv[2]).is_authenticated())' " +
                    url + " " + token + " 2>&1", &out);
    return out;
  };
  CHECK(check(billing_token).find("True") != std::string::npos);
  CHECK(check("bad-token").find("False") != std::string::npos);
}

TEST_CASE("node-vault: tokenLookupSelf and status with a good and a bad token") {
  const std::string node = std::string("NODE_PATH=") + HSMB_NODE_MODULES + " node";
  REQUIRE_MESSAGE(run_command(node + " -e \"require('node-vault')\" 2>/dev/null") == 0,
                  "node-vault is missing: run deploy/install-deps.sh");
  auto url = "http://127.0.0.1:" + std::to_string(open_broker().broker->http_port());
  auto script = [&](const std::string& token) {
    std::string out;
    run_command(node + " -e \"const v=require('node-vault')({endpoint:process.argv[1],token:process.argv[2]});"
                "v.status().then(()=>v.tokenLookupSelf()).then(r=>console.log('OK',r.data.display_name),"
                "e=>console.log('ERR',e.response&&e.response.statusCode))\" " + url + " " + token + " 2>&1", &out);
    return out;
  };
  CHECK(script(billing_token).find("OK token-billing-app") != std::string::npos);
  CHECK(script("bad-token").find("ERR 403") != std::string::npos);
}
