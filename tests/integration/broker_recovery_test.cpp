// A broker whose worker dies, or that is restarted itself, keeps serving: workers are replaced,
// and keys live on the HSM, not in the broker.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "tests/integration/broker_fixture.h"

using namespace hsmb::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {


// Steady traffic from one client thread; counts answers by status.
struct traffic {
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::map<unsigned, int> statuses;
  std::mutex mu;
  std::thread thread;

  traffic(broker_process& b, std::string key) {
    thread = std::thread([this, &b, key] {
      auto c = b.unix_client();
      while (!stop) {
        auto r = call(c, "POST", "/v1/transit/encrypt/" + key, {{"plaintext", b64("load")}});
        std::lock_guard lock(mu);
        ++statuses[r.status];
        ++sent;
      }
    });
  }
  ~traffic() { finish(); }
  void finish() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  int count(unsigned status) {
    std::lock_guard lock(mu);
    return statuses.count(status) ? statuses[status] : 0;
  }
};

}  // namespace

TEST_CASE("a worker killed with SIGKILL under traffic is replaced and serves again") {
  single_member_broker env;
  auto& b = *env.broker;
  auto c = b.unix_client();
  REQUIRE(call(c, "POST", "/v1/transit/keys/k", {{"type", "aes256-gcm96"}}).status == 200);
  // The create's claim is released after its answer, by the worker that checked it: await its end.
  std::vector<pid_t> workers;
  REQUIRE(eventually([&] { return (workers = b.worker_pids()).size() == 1; }, 5s));

  traffic load(b, "k");
  REQUIRE(eventually([&] { return load.sent > 50; }, 10s));
  int before = load.sent;
  REQUIRE(::kill(workers[0], SIGKILL) == 0);

  REQUIRE_MESSAGE(eventually([&] {
                    auto now = b.worker_pids();
                    return now.size() == 1 && now[0] != workers[0];
                  }, 10s),
                  b.log_tail());
  int at_replacement = load.sent;
  REQUIRE(eventually([&] { return load.sent > at_replacement + 50; }, 10s));
  load.finish();

  CHECK(load.count(200) > before);
  CHECK(load.count(500) == 0);  // a dead worker is never a broker bug
  // One member: only the request caught in the killed worker may fail (the client has one in
  // flight at a time); every request arriving while the worker is replaced waits for the fresh one.
  CHECK_MESSAGE(load.count(503) <= 1, load.count(503) << " requests got 503 while the worker was replaced");
  CHECK(load.count(200) + load.count(503) == load.sent);
  auto m = call(c, "GET", "/v1/broker/members").data().at("members").at(0);
  CHECK(m.at("state").as_string() == "serving");
  CHECK(m.at("worker_restarts").to_number<int>() >= 1);
  CHECK(m.at("last_error").at("code").as_string() == "HSMB_WORKER_CRASHED");
  CHECK(call(c, "POST", "/v1/transit/encrypt/k", {{"plaintext", b64("after")}}).status == 200);
}

TEST_CASE("keys survive a broker restart: the HSM is the only store") {
  single_member_broker env;
  auto& b = *env.broker;
  std::string ct, sig;
  {
    auto c = b.unix_client();
    REQUIRE(call(c, "POST", "/v1/transit/keys/persist", {{"type", "aes256-gcm96"}}).status == 200);
    REQUIRE(call(c, "POST", "/v1/transit/keys/persist/rotate").status == 200);
    REQUIRE(call(c, "POST", "/v1/transit/keys/persist/config", {{"min_decryption_version", 2}}).status == 200);
    REQUIRE(call(c, "POST", "/v1/transit/keys/persist-sig", {{"type", "ecdsa-p256"}}).status == 200);
    ct = std::string(call(c, "POST", "/v1/transit/encrypt/persist", {{"plaintext", b64("kept")}}).data().at("ciphertext").as_string());
    sig = std::string(call(c, "POST", "/v1/transit/sign/persist-sig", {{"input", b64("m")}}).data().at("signature").as_string());
  }
  REQUIRE(b.stop() == 0);
  std::filesystem::remove_all(b.dir() + "/state");  // nothing local is needed: the HSM is the store
  b.start();
  auto c = b.unix_client();
  auto info = call(c, "GET", "/v1/transit/keys/persist");
  REQUIRE(info.status == 200);
  CHECK(info.data().at("latest_version").to_number<int>() == 2);
  CHECK(info.data().at("min_decryption_version").to_number<int>() == 2);
  CHECK(unb64(call(c, "POST", "/v1/transit/decrypt/persist", {{"ciphertext", ct}}).data().at("plaintext").as_string()) == "kept");
  CHECK(call(c, "POST", "/v1/transit/verify/persist-sig", {{"input", b64("m")}, {"signature", sig}}).data().at("valid").as_bool());
}

TEST_CASE("a member whose token is missing is down with a clear error, and the broker still answers") {
  softhsm_token token("present");
  member_spec m{"ghost", softhsm_token::module_path(), "no-such-token", token.pin(), {{"SOFTHSM2_CONF", token.conf_path()}}};
  broker_process b({m}, "health: { probe_interval: 200ms }\ntimeouts: { request: 1s, call: 1s }");
  b.start();
  auto c = b.unix_client();
  auto health = call(c, "GET", "/v1/sys/health");
  CHECK(health.status == 503);
  CHECK(health.body.at("members").at("serving").to_number<int>() == 0);
  auto member = call(c, "GET", "/v1/broker/members").data().at("members").at(0);
  CHECK(member.at("state").as_string() == "down");
  CHECK(member.at("last_error").at("code").as_string() == "HSMB_TOKEN_NOT_FOUND");
  auto r = call(c, "POST", "/v1/transit/random/8");
  CHECK(r.status == 503);
  CHECK(r.error().find("ghost") != std::string::npos);
}

TEST_CASE("SIGTERM drains and exits 0") {
  single_member_broker env;
  CHECK(env.broker->stop() == 0);
}

TEST_CASE("a worker inherits no socket but its own channel, and no PIN through the environment") {
  softhsm_token token("isolated");
  member_spec m{"iso", softhsm_token::module_path(), token.label(), token.pin(), {{"SOFTHSM2_CONF", token.conf_path()}}};
  m.pin_from_env = true;
  broker_process b({m});
  b.start();
  {
    auto c = b.unix_client();  // an open client connection must not leak into the worker either
    REQUIRE(call(c, "GET", "/v1/sys/health").status == 200);
    auto workers = b.worker_pids();
    REQUIRE(workers.size() == 1);
    auto fd_dir = "/proc/" + std::to_string(workers[0]) + "/fd";
    for (auto& fd : std::filesystem::directory_iterator(fd_dir)) {
      std::error_code ec;
      auto target = std::filesystem::read_symlink(fd.path(), ec).string();
      if (target.starts_with("socket:")) CHECK_MESSAGE(fd.path().filename() == "3", (fd.path().string() + " -> " + target));
    }
    std::ifstream environ("/proc/" + std::to_string(workers[0]) + "/environ");
    std::string env((std::istreambuf_iterator<char>(environ)), std::istreambuf_iterator<char>());
    CHECK(env.find("HSMB_PIN_iso") == std::string::npos);
    CHECK(env.find("SOFTHSM2_CONF=" + token.conf_path()) != std::string::npos);
  }
}

TEST_CASE("a refused PIN is not retried: real HSMs lock the user after a few failures") {
  softhsm_token token("locked");
  member_spec m{"pin", softhsm_token::module_path(), token.label(), "9999", {{"SOFTHSM2_CONF", token.conf_path()}}};
  broker_process b({m}, "health: { probe_interval: 100ms }\ntimeouts: { request: 1s, call: 1s }");
  b.start();
  auto c = b.unix_client();
  auto first = call(c, "GET", "/v1/broker/members").data().at("members").at(0);
  CHECK(first.at("state").as_string() == "down");
  CHECK(first.at("last_error").at("code").as_string() == "CKR_PIN_INCORRECT");
  REQUIRE(first.at("errors").to_number<int>() >= 1);
  // Every login attempt starts a worker: watch the broker's children for the whole wait. Neither
  // probes nor requests (each of which may ask for a reconnect when every member failed) may try
  // the PIN again.
  std::set<pid_t> workers_seen, before;
  for (auto p : b.worker_pids()) before.insert(p);  // the refused worker, if not reaped yet
  auto until = std::chrono::steady_clock::now() + 800ms;  // eight probe intervals: the absence of retries is the point
  int n = 0;
  while (std::chrono::steady_clock::now() < until) {
    for (auto p : b.worker_pids())
      if (!before.count(p)) workers_seen.insert(p);
    if (n++ % 10 == 0) CHECK(call(c, "POST", "/v1/transit/random/8").status == 503);
    std::this_thread::sleep_for(5ms);  // sampling period of the watch, not a synchronisation
  }
  auto later = call(c, "GET", "/v1/broker/members").data().at("members").at(0);
  INFO(json::serialize(later));
  CHECK(later.at("state").as_string() == "down");
  CHECK(later.at("errors") == first.at("errors"));
  CHECK(later.at("last_error").at("at") == first.at("last_error").at("at"));
  CHECK(later.at("last_error").at("code").as_string() == "CKR_PIN_INCORRECT");
  CHECK(later.at("worker_restarts").to_number<int>() == 0);
  CHECK_MESSAGE(workers_seen.empty(), workers_seen.size() << " workers were started after the PIN was refused");
}

TEST_CASE("RSA input too long for PKCS#1 v1.5 is a 400 and restarts nothing") {
  single_member_broker env;
  auto c = env.broker->unix_client();
  REQUIRE(call(c, "POST", "/v1/transit/keys/r", {{"type", "rsa-2048"}}).status == 200);
  auto r = call(c, "POST", "/v1/transit/sign/r/none", {{"input", b64(std::string(300, 'x'))}, {"signature_algorithm", "pkcs1v15"}});
  CHECK(r.status == 400);
  CHECK(call(c, "POST", "/v1/transit/sign/r/none", {{"input", b64(std::string(245, 'x'))}, {"signature_algorithm", "pkcs1v15"}}).status == 200);
  auto m = call(c, "GET", "/v1/broker/members").data().at("members").at(0);
  CHECK(m.at("worker_restarts").to_number<int>() == 0);
  CHECK(m.at("errors").to_number<int>() == 0);
}

TEST_CASE("workers die with their broker: a SIGKILLed broker leaves no worker holding HSM sessions") {
  single_member_broker env;
  auto workers = env.broker->worker_pids();
  REQUIRE(workers.size() == 1);
  REQUIRE(::kill(env.broker->pid(), SIGKILL) == 0);
  env.broker->stop();  // reaps the killed broker
  CHECK_MESSAGE(eventually([&] { return ::kill(workers[0], 0) != 0; }, 5s), "worker " << workers[0] << " outlived its broker");
}

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("the PIN is never in argv, the environment, the logs, the API or an error message") {
  const std::string pin = "Pin4711Secret", wrong = "Wrong8642Secret";
  softhsm_token good("pin-good", pin), other("pin-other", pin);
  member_spec right{"right", softhsm_token::module_path(), good.label(), pin, {{"SOFTHSM2_CONF", good.conf_path()}}};
  member_spec refused{"refused", softhsm_token::module_path(), other.label(), wrong, {{"SOFTHSM2_CONF", other.conf_path()}}};
  broker_process b({right, refused}, "health: { probe_interval: 200ms }\ntimeouts: { request: 1s, call: 1s }");
  b.set_env("HSMB_LOG_LEVEL", "debug");  // whatever the broker says, even at its most talkative
  b.start();
  broker_process lone({refused}, "health: { probe_interval: 200ms }\ntimeouts: { request: 1s, call: 1s }");
  lone.set_env("HSMB_LOG_LEVEL", "debug");
  lone.start();

  std::vector<std::string> seen;  // every text a PIN must not appear in
  {
    auto c = b.unix_client();
    // (No key is made: with a member unread since start-up the broker cannot rule out that the
    // name exists there, and refuses to create it.)
    REQUIRE(call(c, "POST", "/v1/transit/random/8").status == 200);
    auto members = c.request("GET", "/v1/broker/members");
    REQUIRE(members.body.find("CKR_PIN_INCORRECT") != std::string::npos);  // the refusal is reported, without the PIN
    seen.push_back(members.body);
    seen.push_back(c.request("GET", "/metrics").body);
    seen.push_back(c.request("GET", "/v1/sys/health").body);
    auto lc = lone.unix_client();
    auto r = call(lc, "POST", "/v1/transit/random/8");
    REQUIRE(r.status == 503);
    seen.push_back(r.error());
    seen.push_back(lc.request("GET", "/v1/broker/members").body);
    REQUIRE(!b.worker_pids().empty());  // the serving member's worker, logged in
    for (auto* p : {&b, &lone}) {
      for (pid_t pid : p->worker_pids()) {
        auto proc = "/proc/" + std::to_string(pid);
        seen.push_back(slurp(proc + "/cmdline"));
        seen.push_back(slurp(proc + "/environ"));
      }
      seen.push_back(slurp("/proc/" + std::to_string(p->pid()) + "/cmdline"));
    }
  }
  std::string check_output;
  CHECK(run_command(std::string(HSMB_BIN_DIR) + "/hsm-broker --config " + lone.config_path() + " --check", &check_output) == 0);
  seen.push_back(check_output);
  REQUIRE(b.stop() == 0);
  REQUIRE(lone.stop() == 0);
  seen.push_back(b.log_tail(1 << 20));
  seen.push_back(lone.log_tail(1 << 20));
  REQUIRE(seen.back().find("refused") != std::string::npos);  // the log did talk about the member
  for (std::size_t i = 0; i < seen.size(); ++i) {
    CAPTURE(i);
    CHECK_MESSAGE(seen[i].find(pin) == std::string::npos, seen[i].substr(0, 2000));
    CHECK_MESSAGE(seen[i].find(wrong) == std::string::npos, seen[i].substr(0, 2000));
  }
}
