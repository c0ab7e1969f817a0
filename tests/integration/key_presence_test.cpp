// Never a false "key not found": a key that lives on some members only (p11-kit carries no key
// wrap, so nothing is copied between these members) is answered 404 only once every member's
// records were read; a generation of a hand-off takes traffic only once it can serve every
// member's keys; an operation goes only to members whose mechanisms can do it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "tests/integration/broker_fixture.h"
#include "tests/lib/network_hsm.h"

using namespace hsmb::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

const std::string fast = "health: { probe_interval: 500ms, idle_probe_interval: 500ms }\ntimeouts: { request: 5s, call: 1s }\n";

// A key made on `hsm` alone, by a broker that has only that member.
void make_key_on(const member_spec& hsm, const std::string& key, const std::string& type) {
  broker_process b({hsm});
  b.start();
  auto c = b.unix_client();
  auto r = call(c, "POST", "/v1/transit/keys/" + key, {{"type", type}});
  REQUIRE_MESSAGE(r.status == 200, r.error());
}

member_spec direct_member(const std::string& name, const softhsm_token& t) {
  return {name, softhsm_token::module_path(), t.label(), t.pin(), {{"SOFTHSM2_CONF", t.conf_path()}}};
}

// One request on a fresh connection, never resent: what a client without retries sees.
struct one_shot {
  unsigned status = 0;  // 0: no answer (the connection failed or closed unanswered)
  std::string body;
};

one_shot post_once(const std::string& socket_path, const std::string& target, const std::string& body) {
  one_shot out;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return out;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req = "POST " + target + " HTTP/1.1\r\nHost: broker\r\nConnection: close\r\nContent-Type: application/json\r\n"
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return out;
  }
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) reply.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (reply.starts_with("HTTP/1.1 ") && reply.size() >= 12) out.status = static_cast<unsigned>(std::stoi(reply.substr(9, 3)));
  auto split = reply.find("\r\n\r\n");
  if (split != std::string::npos) out.body = reply.substr(split + 4);
  return out;
}

json::object sign_body(int n) { return {{"input", b64("message " + std::to_string(n))}}; }

}  // namespace

TEST_CASE("a key whose only holder is down: 503 naming that member, never 404; 200 once it is back") {
  network_hsm hsm1("hsm1"), hsm2("hsm2");
  make_key_on(hsm2.member("hsm2"), "only-on-2", "ecdsa-p256");
  hsm2.kill();
  broker_process b({hsm1.member("hsm1"), hsm2.member("hsm2")}, fast);
  b.start();
  REQUIRE_MESSAGE(member_state(b, "hsm2") == "down", b.log_tail());  // READY came once hsm2 was found down
  auto c = b.unix_client();
  for (auto [method, path] : {std::pair{"POST", "/v1/transit/sign/only-on-2"}, std::pair{"GET", "/v1/transit/keys/only-on-2"}}) {
    auto r = call(c, method, path, method == std::string("POST") ? sign_body(1) : json::object{});
    CHECK_MESSAGE(r.status == 503, path << ": " << r.status << " " << r.error());
    CHECK_MESSAGE(r.error().find("hsm2") != std::string::npos, r.error());
  }
  // Verify runs in the broker, but the public key is unknown too: still 503, not 404.
  auto v = call(c, "POST", "/v1/transit/verify/only-on-2", {{"input", b64("x")}, {"signature", "vault:v1:AAAA"}});
  CHECK_MESSAGE(v.status == 503, v.error());
  // A create cannot tell whether the name exists on hsm2: refused, not a second key of that name.
  auto made = call(c, "POST", "/v1/transit/keys/only-on-2", {{"type", "aes256-gcm96"}});
  CHECK_MESSAGE(made.status == 503, made.error());

  hsm2.start();
  REQUIRE_MESSAGE(eventually([&] { return member_state(b, "hsm2") == "serving"; }, 10s), b.log_tail());
  auto r = call(c, "POST", "/v1/transit/sign/only-on-2", sign_body(2));
  CHECK_MESSAGE(r.status == 200, r.error());
  auto nowhere = call(c, "POST", "/v1/transit/sign/on-no-member", sign_body(3));  // every member read
  CHECK_MESSAGE(nowhere.status == 404, nowhere.error());
}

TEST_CASE("a name no member holds is 404 once every member is read, even with one down since") {
  network_hsm hsm1("hsm1"), hsm2("hsm2");
  broker_process b({hsm1.member("hsm1"), hsm2.member("hsm2")}, fast);
  b.start();
  hsm2.kill();  // read at start-up: its records are known, its absence does not make names unknown
  auto c = b.unix_client();
  REQUIRE_MESSAGE(eventually([&] { return member_state(b, "hsm2") == "down"; }, 10s), b.log_tail());
  auto r = call(c, "POST", "/v1/transit/sign/never-made", sign_body(1));
  CHECK_MESSAGE(r.status == 404, r.error());
}

TEST_CASE("a key made by another broker on a member this one reads is found on first use") {
  network_hsm hsm1("hsm1"), hsm2("hsm2");
  broker_process b({hsm1.member("hsm1"), hsm2.member("hsm2")}, fast);
  b.start();
  // A sidecar that shares hsm2 only creates a key there after `b` read its records.
  make_key_on(hsm2.member("hsm2"), "made-elsewhere", "ecdsa-p256");
  auto c = b.unix_client();
  auto r = call(c, "POST", "/v1/transit/sign/made-elsewhere", sign_body(1));
  CHECK_MESSAGE(r.status == 200, r.status << " " << r.error());
}

TEST_CASE("hmac sha2-224 goes only to a member that offers CKM_SHA224_HMAC") {
  // The same SoftHSM2 token reached two ways: through p11-kit 0.24, whose client drops
  // CKM_SHA224_HMAC from the mechanism list, and loaded directly. replication: none says so.
  network_hsm net("shared");
  auto via_net = net.member("net");
  member_spec direct{"direct", softhsm_token::module_path(), net.label(), net.token().pin(),
                     {{"SOFTHSM2_CONF", net.token().conf_path()}}};
  make_key_on(via_net, "mac", "hmac");
  broker_process b({via_net, direct}, fast + "replication: { mode: none }\n");
  b.start();
  REQUIRE_MESSAGE(eventually([&] { return member_state(b, "net") == "serving" && member_state(b, "direct") == "serving"; }, 10s),
                  b.log_tail());
  auto c = b.unix_client();
  int ok = 0;
  for (int i = 0; i < 40; ++i) {
    auto r = call(c, "POST", "/v1/transit/hmac/mac/sha2-224", {{"input", b64("m" + std::to_string(i))}});
    CHECK_MESSAGE(r.status == 200, r.error());
    ok += r.status == 200;
    auto s = call(c, "POST", "/v1/transit/hmac/mac/sha2-256", {{"input", b64("m")}});
    CHECK_MESSAGE(s.status == 200, s.error());
  }
  CHECK(ok == 40);
}

TEST_CASE("a key is placed where every request for it can be served (hmac sha2-224)") {
  network_hsm net("net1");
  softhsm_token local("local");
  // p11-kit first: config order alone would place keys there.
  broker_process b({net.member("net1"), direct_member("local", local)}, fast);
  b.start();
  auto c = b.unix_client();
  for (auto type : {"hmac", "ecdsa-p256"}) {
    auto name = std::string("placed-") + type;
    auto made = call(c, "POST", "/v1/transit/keys/" + name, {{"type", type}});
    REQUIRE_MESSAGE(made.status == 200, made.error());
    for (auto hash : {"sha2-224", "sha2-256", "sha2-512"}) {
      auto r = call(c, "POST", "/v1/transit/hmac/" + name + "/" + hash, {{"input", b64("m")}});
      CHECK_MESSAGE(r.status == 200, type << " " << hash << ": " << r.error());
    }
  }
}

TEST_CASE("supervisor restarts every 2 s under keyed load, keys on single members of three: 0 failed, 0 404") {
  network_hsm hsm1("hsm1"), hsm2("hsm2");
  softhsm_token local("hsm3");  // AES-GCM needs a directly loaded token (p11-kit 0.24 cannot carry it)
  auto m1 = hsm1.member("hsm1"), m2 = hsm2.member("hsm2"), m3 = direct_member("hsm3", local);
  make_key_on(m1, "s1", "ecdsa-p256");
  make_key_on(m2, "s2", "ecdsa-p256");
  make_key_on(m3, "s3", "ecdsa-p256");
  make_key_on(m3, "e3", "aes256-gcm96");
  broker_process sup({m1, m2, m3}, fast + "supervisor: { restart_interval: 2s, restart_jitter: 0%, drain_timeout: 10s }\n");
  sup.use_supervisor();
  sup.start(30s);

  // A ciphertext made before the restarts, decrypted throughout.
  auto c = sup.unix_client();
  auto sealed = call(c, "POST", "/v1/transit/encrypt/e3", {{"plaintext", b64("kept")}});
  REQUIRE_MESSAGE(sealed.status == 200, sealed.error());
  std::string ciphertext(sealed.data().at("ciphertext").as_string());

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<unsigned, int> statuses;
  std::vector<std::string> samples;
  auto client = [&](int id) {
    for (int n = 0; !stop; ++n) {
      std::string target, body;
      switch ((id + n) % 5) {
        case 0: target = "/v1/transit/sign/s1"; break;
        case 1: target = "/v1/transit/sign/s2"; break;
        case 2: target = "/v1/transit/sign/s3"; break;
        case 3: target = "/v1/transit/encrypt/e3"; body = json::serialize(json::object{{"plaintext", b64("p")}}); break;
        default: target = "/v1/transit/decrypt/e3"; body = json::serialize(json::object{{"ciphertext", ciphertext}});
      }
      if (body.empty()) body = json::serialize(sign_body(n));
      auto r = post_once(sup.socket_path(), target, body);
      std::lock_guard l(mu);
      ++statuses[r.status];
      if (r.status != 200 && samples.size() < 5) samples.push_back(target + " -> " + std::to_string(r.status) + " " + r.body);
    }
  };
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) clients.emplace_back(client, i);
  auto generations = [&] {
    auto log = sup.log_tail(1 << 22);
    std::regex ready("generation [0-9]+ ready");
    return std::distance(std::sregex_iterator(log.begin(), log.end(), ready), std::sregex_iterator());
  };
  bool enough = eventually([&] { return generations() >= 6; }, 40s);
  stop = true;
  for (auto& t : clients) t.join();
  int total = 0, failed = 0;
  for (auto& [status, n] : statuses) {
    total += n;
    if (status != 200) failed += n;
  }
  std::string seen;
  for (auto& s : samples) seen += s + "\n";
  MESSAGE(generations() << " generations, " << total << " requests, " << failed << " failed, " << statuses[404]
                        << " answered 404\n" << seen);
  CHECK_MESSAGE(enough, sup.log_tail());
  CHECK(total > 500);
  CHECK(statuses[404] == 0);
  CHECK(failed == 0);
}
