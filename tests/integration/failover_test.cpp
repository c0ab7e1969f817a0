// High availability on simulated network HSMs (SoftHSM2 behind `p11-kit server`), with real
// faults: SIGKILL, SIGSTOP/SIGCONT and restart of the servers. Every scenario runs under steady
// client load on the Unix socket and asserts that no request failed, unless stated.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <boost/json.hpp>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "tests/integration/broker_fixture.h"
#include "tests/lib/load_generator.h"
#include "tests/lib/network_hsm.h"

using namespace hsmb::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

// Fast detection for tests; the defaults behave the same, only slower. Idle members are probed
// every probe interval here, as a quiet period in these scenarios is a few seconds.
const std::string fast_health = "health: { probe_interval: 500ms, idle_probe_interval: 500ms }\ntimeouts: { request: 5s, call: 1s }\n";
const std::string steady_health = "health: { probe_interval: 500ms, idle_probe_interval: 500ms }\n";


json::value member_info(broker_process& b, const std::string& name) {
  auto c = b.unix_client();
  auto reply = call(c, "GET", "/v1/broker/members");  // named: a range-for keeps no temporary alive
  for (auto& m : reply.data().at("members").as_array())
    if (m.at("name").as_string() == name) return m;
  FAIL("no member " << name);
  return nullptr;
}

bool all_serving(broker_process& b, int n) {
  auto c = b.unix_client();
  auto h = call(c, "GET", "/v1/sys/health");
  return h.status == 200 && h.body.at("members").at("serving").to_number<int>() == n;
}

// Two network HSMs holding the key "load", and a broker over both.
struct two_hsms {
  network_cluster hsms{2, [](network_hsm& first) { provision(first, "load", "ecdsa-p256"); }};
  std::unique_ptr<broker_process> broker;
  explicit two_hsms(const std::string& extra = fast_health) {
    broker = std::make_unique<broker_process>(hsms.members(), extra);
    broker->start();
    REQUIRE_MESSAGE(eventually([&] { return all_serving(*broker, 2); }, 10s), broker->log_tail());
  }
  hsmb::client::endpoint endpoint() const {
    hsmb::client::endpoint ep;
    ep.unix_path = broker->socket_path();
    return ep;
  }
};

load_request sign_request(int, int n) {
  return {"POST", "/v1/transit/sign/load", json::serialize(json::object{{"input", b64("msg " + std::to_string(n))}})};
}

}  // namespace

TEST_CASE("(a) the war story: HSM1 dies and returns, quiet period, HSM2 dies: requests still succeed") {
  two_hsms env;
  auto& b = *env.broker;
  {
    load_generator load(env.endpoint(), 2, sign_request);
    REQUIRE(eventually([&] { return load.sent() > 100; }, 10s));
    env.hsms[0].kill();
    REQUIRE_MESSAGE(eventually([&] { return member_state(b, "hsm1") == "down"; }, 5s), b.log_tail());
    env.hsms[0].start();
    REQUIRE_MESSAGE(eventually([&] { return member_state(b, "hsm1") == "serving"; }, 5s), b.log_tail());
    load.stop();
    CHECK_MESSAGE(load.failures() == 0, load.summary());
  }
  std::this_thread::sleep_for(3s);  // the scenario: several seconds with no traffic at all
  env.hsms[1].kill();
  load_generator load(env.endpoint(), 2, sign_request);
  REQUIRE(eventually([&] { return load.sent() > 300; }, 15s));
  load.stop();
  CHECK_MESSAGE(load.failures() == 0, load.summary());
  CHECK(member_state(b, "hsm1") == "serving");
  CHECK(member_state(b, "hsm2") == "down");
}

TEST_CASE("(b) a hung HSM (SIGSTOP) costs no request, turns suspect and gets no new traffic; p99 under 200 ms") {
  two_hsms env;
  auto& b = *env.broker;
  load_generator load(env.endpoint(), 4, sign_request);
  REQUIRE(eventually([&] { return load.sent() > 200; }, 10s));
  env.hsms[1].stop();
  auto hung_at = std::chrono::steady_clock::now();
  // The first request caught by the hang is hedged after one hedge delay (20 ms here: p99 is a
  // few ms) and makes it suspect: from then on no request may be sent to it for as long as it
  // hangs. The window starts 150 ms in, past the requests already on their way to it; a member
  // left serving until its hung worker is killed (timeouts.call, 1 s) would take traffic in it.
  std::this_thread::sleep_for(150ms);  // a measurement window, not a synchronisation
  auto requests_then = member_info(b, "hsm2").at("requests").to_number<int>();
  CHECK_MESSAGE(member_state(b, "hsm2") != "serving", "150 ms into the hang: " << json::serialize(member_info(b, "hsm2")));
  std::vector<std::string> states;
  while (std::chrono::steady_clock::now() - hung_at < 5s) {  // the fault's duration
    auto st = member_state(b, "hsm2");
    if (states.empty() || states.back() != st) states.push_back(st);
    std::this_thread::sleep_for(50ms);  // sampling period, not synchronisation
  }
  auto requests_at_end = member_info(b, "hsm2").at("requests").to_number<int>();
  env.hsms[1].resume();
  std::string seq;
  for (auto& st : states) seq += st + " ";
  CHECK_MESSAGE(requests_at_end == requests_then,
                (requests_at_end - requests_then) << " requests were sent to the hung member; its states: " << seq);
  CHECK_MESSAGE(std::find(states.begin(), states.end(), "serving") == states.end(), "states while hung: " << seq);
  REQUIRE_MESSAGE(eventually([&] { return member_state(b, "hsm2") == "serving"; }, 10s), b.log_tail());
  int at_recovery = load.sent();
  REQUIRE(eventually([&] { return load.sent() > at_recovery + 200; }, 10s));
  load.stop();
  CHECK_MESSAGE(load.failures() == 0, load.summary());
  CHECK_MESSAGE(load.percentile_ms(0.99) < 200.0, load.summary());
  // No request waited for the hung worker to be killed (timeouts.call, 1 s): each caught by the
  // hang was hedged to hsm1 after about one hedge delay.
  CHECK_MESSAGE(load.percentile_ms(1.0) < 500.0, load.summary());
  auto hsm2 = member_info(b, "hsm2");
  CHECK(hsm2.at("hedges").to_number<int>() >= 1);
  CHECK(hsm2.at("worker_restarts").to_number<int>() >= 1);  // the hung worker was killed at timeouts.call
  MESSAGE("hung HSM: " << load.summary() << "; hsm2 while hung: " << seq);
}

TEST_CASE("(c) HSMs crash and return in turn for 20 s, never both down") {
  two_hsms env;
  auto& b = *env.broker;
  load_generator load(env.endpoint(), 2, sign_request);
  auto end = std::chrono::steady_clock::now() + 20s;
  int cycles = 0;
  for (int i = 0; std::chrono::steady_clock::now() < end; ++i, ++cycles) {
    auto& hsm = env.hsms[static_cast<std::size_t>(i % 2)];
    hsm.kill();
    // The broker must have seen this crash (the member is down) before it comes back...
    REQUIRE_MESSAGE(eventually([&] { return member_state(b, hsm.name()) == "down"; }, 5s), b.log_tail());
    int at_down = load.sent();
    REQUIRE(eventually([&] { return load.sent() > at_down + 100; }, 5s));  // ...and served on without it
    hsm.start();
    // The other one is killed next: wait until this one is back and taking traffic again (the
    // rule is only that both are never down at the same time).
    REQUIRE_MESSAGE(eventually([&] { return member_state(b, hsm.name()) == "serving"; }, 5s), b.log_tail());
    auto requests = member_info(b, hsm.name()).at("requests").to_number<int>();
    REQUIRE_MESSAGE(eventually([&] { return member_info(b, hsm.name()).at("requests").to_number<int>() > requests + 20; }, 5s),
                    b.log_tail());
  }
  load.stop();
  CHECK(cycles >= 4);
  CHECK_MESSAGE(load.failures() == 0, load.summary());
  MESSAGE("crash cycles: " << cycles << ", " << load.summary());
}

TEST_CASE("(d) both down gives a clear 503; one back serves again within 2 x probe_interval, same broker") {
  two_hsms env("health: { probe_interval: 1s, idle_probe_interval: 1s, max_backoff: 1s }\ntimeouts: { request: 3s, call: 1s }\n");
  auto& b = *env.broker;
  pid_t pid = b.pid();
  env.hsms[0].kill();
  env.hsms[1].kill();
  auto c = b.unix_client();
  auto r = call(c, "POST", "/v1/transit/sign/load", {{"input", b64("x")}});
  CHECK(r.status == 503);
  CHECK_MESSAGE(r.error().find("hsm1") != std::string::npos, r.error());
  CHECK_MESSAGE(r.error().find("hsm2") != std::string::npos, r.error());
  CHECK_MESSAGE(r.error().find("HSMB_TOKEN_NOT_FOUND") != std::string::npos, r.error());  // a network HSM's slot vanishes
  REQUIRE(eventually([&] { return call(c, "GET", "/v1/sys/health").status == 503; }, 5s));

  env.hsms[0].start();
  auto back = std::chrono::steady_clock::now();
  REQUIRE_MESSAGE(eventually([&] { return call(c, "GET", "/v1/sys/health").status == 200; }, 2s), b.log_tail());
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - back);
  MESSAGE("serving again after " << took.count() << " ms");
  CHECK(took <= 2s);
  CHECK(call(c, "POST", "/v1/transit/sign/load", {{"input", b64("x")}}).status == 200);
  CHECK(b.pid() == pid);
  CHECK(::kill(pid, 0) == 0);
}

TEST_CASE("(e) a stream of caller errors leaves every member serving") {
  two_hsms env;
  auto& b = *env.broker;
  auto c = b.unix_client();
  REQUIRE(call(c, "POST", "/v1/transit/keys/hm", {{"type", "hmac"}}).status == 200);
  struct bad_request {
    load_request request;
    unsigned status;  // the one answer it must get, every time
  };
  std::vector<bad_request> bad = {
      {{"POST", "/v1/transit/sign/load", R"({"input":"not base64!"})"}, 400},
      {{"POST", "/v1/transit/sign/nope", R"({"input":"aGk="})"}, 404},
      {{"POST", "/v1/transit/encrypt/load", R"({"plaintext":"aGk="})"}, 400},             // wrong key type
      {{"POST", "/v1/transit/sign/load", R"({"input":"aGk=","prehashed":true})"}, 400},  // not a digest
      {{"POST", "/v1/transit/verify/load", R"({"input":"aGk=","signature":"vault:v1:AAAA"})"}, 200},  // valid: false
      {{"POST", "/v1/transit/verify/hm", R"({"input":"aGk=","hmac":"vault:v7:AAAA"})"}, 400},  // no version 7
      {{"POST", "/v1/transit/sign/load/sha2-999", R"({"input":"aGk="})"}, 400},
      {{"POST", "/v1/transit/sign/load", R"({"input":)"}, 400},
      {{"POST", "/v1/transit/keys/bad", R"({"type":"des"})"}, 400},
  };
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, wrong{0};
  std::mutex mu;
  std::vector<std::string> samples;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      auto own = b.unix_client();
      for (std::size_t n = static_cast<std::size_t>(t); !stop; ++n) {
        auto& item = bad[n % bad.size()];
        unsigned status = 0;
        std::string body;
        auto began = std::chrono::steady_clock::now();
        try {
          auto r = own.request(item.request.method, item.request.target, item.request.body);
          status = r.status;
          body = r.body;
        } catch (const std::exception& e) {
          body = e.what();
        }
        bool valid_false = item.status != 200 || body.find("\"valid\":false") != std::string::npos;
        auto took = std::chrono::steady_clock::now() - began;
        if (status != item.status || !valid_false || took > 1s) {
          ++wrong;
          std::lock_guard lock(mu);
          if (samples.size() < 5) samples.push_back(item.request.target + " " + item.request.body + " -> " + std::to_string(status) + " " + body + " after " +
                            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) + " ms");
        }
        ++sent;
      }
    });
  load_generator good(env.endpoint(), 1, sign_request);
  bool enough = eventually([&] { return sent > 300; }, 15s);  // a 404 waits for a re-read of the records (~0.2 s)
  stop = true;
  for (auto& t : threads) t.join();
  good.stop();
  std::string why;
  for (auto& s : samples) why += "\n  " + s;
  REQUIRE_MESSAGE(enough, "only " << sent.load() << " caller errors answered in 15 s; " << wrong.load() << " wrong or slower than 1 s:" << why);
  CHECK_MESSAGE(wrong == 0, wrong.load() << " of " << sent.load() << " caller errors got another answer, or took over 1 s:" << why);
  CHECK_MESSAGE(good.failures() == 0, good.summary());
  CHECK(good.sent() > 50);
  for (auto name : {"hsm1", "hsm2"}) {
    auto m = member_info(b, name);
    INFO(json::serialize(m));
    CHECK(m.at("state").as_string() == "serving");
    CHECK(m.at("errors").to_number<int>() == 0);
    CHECK(m.at("failovers").to_number<int>() == 0);  // never retried elsewhere
    CHECK(m.at("worker_restarts").to_number<int>() == 0);
  }
}

TEST_CASE("an HSM that dies during a quiet period is found by probing before any request") {
  two_hsms env;
  auto& b = *env.broker;
  auto before = member_info(b, "hsm2").at("requests").to_number<int>();  // the key catalog's load
  env.hsms[1].kill();
  REQUIRE_MESSAGE(eventually([&] { return member_state(b, "hsm2") == "down"; }, 3s), b.log_tail());
  auto m = member_info(b, "hsm2");
  CHECK(m.at("requests").to_number<int>() == before);
  CHECK(m.at("probes").to_number<int>() >= 1);
}

TEST_CASE("workers are recycled by age, one member at a time, make before break, without a failed request") {
  two_hsms env(fast_health + "recycle: { worker_max_age: 2s }\n");
  auto& b = *env.broker;
  // The broker's children are its workers: one per member, plus one while a member's fresh worker
  // takes over from the old one. Two members recycling at once would make four.
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> most{0};
  std::set<pid_t> seen;
  std::thread watch([&] {
    while (!stop) {
      auto kids = b.worker_pids();
      for (auto p : kids) seen.insert(p);
      if (kids.size() > most) most = kids.size();
      std::this_thread::sleep_for(2ms);  // sampling period
    }
  });
  load_generator load(env.endpoint(), 2, sign_request);
  bool recycled = eventually([&] {
    return member_info(b, "hsm1").at("worker_recycles").to_number<int>() >= 2 &&
           member_info(b, "hsm2").at("worker_recycles").to_number<int>() >= 2;
  }, 20s);
  load.stop();
  stop = true;
  watch.join();
  REQUIRE_MESSAGE(recycled, b.log_tail());
  CHECK_MESSAGE(load.failures() == 0, load.summary());
  CHECK_MESSAGE(most.load() <= 3, "at most one member may be recycling: " << most.load() << " workers at once");
  CHECK_MESSAGE(most.load() == 3, "the fresh worker runs before the old one goes");
  CHECK(seen.size() >= 6);  // two workers at the start, four recycles
  for (auto name : {"hsm1", "hsm2"}) {
    auto m = member_info(b, name);
    INFO(json::serialize(m));
    CHECK(m.at("worker_restarts").to_number<int>() == 0);
    CHECK(m.at("errors").to_number<int>() == 0);
  }
}

TEST_CASE("load is spread over both members") {
  two_hsms env;
  auto& b = *env.broker;
  load_generator load(env.endpoint(), 2, sign_request);
  REQUIRE(eventually([&] { return load.sent() > 400; }, 15s));
  load.stop();
  auto r1 = member_info(b, "hsm1").at("requests").to_number<int>();
  auto r2 = member_info(b, "hsm2").at("requests").to_number<int>();
  MESSAGE("hsm1 " << r1 << " requests, hsm2 " << r2);
  CHECK(r1 > 50);
  CHECK(r2 > 50);
}

TEST_CASE("keys go to members whose HSM supports them: AES on a local token, not through p11-kit 0.24") {
  network_hsm net("net1");
  softhsm_token local("local1");
  member_spec local_member{"local1", softhsm_token::module_path(), local.label(), local.pin(), {{"SOFTHSM2_CONF", local.conf_path()}}};
  // No fault here, so the default call timeout: on a loaded CI machine a key generation through
  // p11-kit can pass fast_health's 1 s, which kills the worker and answers 503.
  broker_process b({net.member("net1"), local_member}, steady_health);
  b.start();
  auto c = b.unix_client();
  REQUIRE(eventually([&] { return all_serving(b, 2); }, 10s));
  for (int i = 0; i < 3; ++i) {  // whichever member is listed first, AES lands on the local one
    auto name = "aes" + std::to_string(i);
    auto made = call(c, "POST", "/v1/transit/keys/" + name, {{"type", "aes256-gcm96"}});
    REQUIRE_MESSAGE(made.status == 200, made.error() << "\n" << b.log_tail(4000));
    auto ct = call(c, "POST", "/v1/transit/encrypt/" + name, {{"plaintext", b64("x")}});
    REQUIRE_MESSAGE(ct.status == 200, ct.error());
    CHECK(call(c, "POST", "/v1/transit/decrypt/" + name, {{"ciphertext", ct.data().at("ciphertext")}}).status == 200);
  }
  CHECK(member_info(b, "net1").at("errors").to_number<int>() == 0);

  // With no capable member at all, creating the key says why.
  network_hsm only("net2");
  broker_process b2({only.member("net2")}, fast_health);
  b2.start();
  auto c2 = b2.unix_client();
  auto r = call(c2, "POST", "/v1/transit/keys/nope", {{"type", "aes256-gcm96"}});
  CHECK(r.status == 400);
  CHECK_MESSAGE(r.error().find("supports keys of type aes256-gcm96") != std::string::npos, r.error());
}

TEST_CASE("requests for a key held only by a dead HSM get 503 and never restart a healthy member") {
  two_hsms env;
  auto& b = *env.broker;
  auto c = b.unix_client();
  REQUIRE(call(c, "POST", "/v1/transit/keys/solo", {{"type", "ecdsa-p256"}}).status == 200);
  auto report = call(c, "GET", "/v1/broker/keys/sync");
  std::string holder;
  for (auto& [member, copy] : report.data().at("keys").at("solo").at("versions").at("1").at("members").as_object())
    if (copy.as_object().contains("fingerprint")) holder = std::string(member);
  REQUIRE(!holder.empty());
  std::string other = holder == "hsm1" ? "hsm2" : "hsm1";
  env.hsms[holder == "hsm1" ? 0 : 1].kill();
  REQUIRE_MESSAGE(eventually([&] { return member_state(b, holder) == "down"; }, 5s), b.log_tail());

  for (int i = 0; i < 50; ++i) {
    auto r = call(c, "POST", "/v1/transit/sign/solo", {{"input", b64("x")}});
    CHECK(r.status == 503);
    CHECK(call(c, "POST", "/v1/transit/sign/load", {{"input", b64("x")}}).status == 200);  // other keys unaffected
  }
  auto m = member_info(b, other);
  CHECK(m.at("state").as_string() == "serving");
  CHECK(m.at("worker_restarts").to_number<int>() == 0);
  CHECK(m.at("errors").to_number<int>() == 0);
}
