// hsm-supervisor end to end: real supervisor, broker generations and SoftHSM2 token. Periodic
// restarts under load on both listeners, crash and hang recovery, SIGHUP with a broken
// configuration, socket activation, and the sd_notify messages seen by a test NOTIFY_SOCKET.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <mutex>
#include <thread>

#include "tests/integration/broker_fixture.h"
#include "tests/lib/load_generator.h"

using namespace hsmb::test;
using namespace std::chrono_literals;

namespace {

member_spec local_member(const softhsm_token& t) {
  return {"local", softhsm_token::module_path(), t.label(), t.pin(), {{"SOFTHSM2_CONF", t.conf_path()}}};
}

// The highest generation number the supervisor reported in STATUS=generation N.
int latest_generation(broker_process& p) {
  static const std::regex re("STATUS=generation ([0-9]+)");
  int latest = 0;
  for (auto& n : p.notifications()) {
    std::smatch m;
    if (std::regex_search(n, m, re)) latest = std::max(latest, std::stoi(m[1]));
  }
  return latest;
}

pid_t serving_broker(broker_process& p) {
  auto kids = p.worker_pids();  // the supervisor's children: broker generations
  return kids.empty() ? -1 : kids.back();
}

bool healthy(broker_process& p) {
  try {
    auto c = p.unix_client();
    return c.request("GET", "/v1/sys/health", "").status == 200;
  } catch (const std::exception&) {
    return false;
  }
}

load_request health_probe(int, int) { return {"GET", "/v1/sys/health", ""}; }

// Connects anew for every request, so a refused or reset connection shows up as a failure.
struct fresh_connections {
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread t;
  explicit fresh_connections(const std::string& socket_path) {
    t = std::thread([this, socket_path] {
      hsmb::client::endpoint ep;
      ep.unix_path = socket_path;
      while (!stop) {
        try {
          hsmb::client::broker_client c(ep, 10s);
          if (c.request("GET", "/v1/sys/health", "").status == 200) ++ok;
          else ++failed;
        } catch (const std::exception& e) {
          ++failed;
          std::lock_guard lock(mutex);
          last_error = e.what();
        }
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  ~fresh_connections() {
    stop = true;
    t.join();
  }
  std::string error() const {
    std::lock_guard lock(mutex);
    return last_error;
  }

 private:
  mutable std::mutex mutex;  // guards last_error, written by the thread
  std::string last_error;
};

const char* quick = "health: { probe_interval: 200ms }\n";

}  // namespace

TEST_CASE("the broker alone reports READY, STATUS, WATCHDOG and STOPPING") {
  softhsm_token t("sd-broker");
  broker_process b({local_member(t)}, quick);
  b.set_env("WATCHDOG_USEC", "300000");
  b.start();
  CHECK(b.await_notification("READY=1", 5s));
  CHECK(b.await_notification("STATUS=serving: 1 of 1 members", 5s));
  CHECK(b.await_notification("WATCHDOG=1", 2s));
  b.signal(SIGTERM);
  CHECK(b.await_notification("STOPPING=1", 5s));
}

TEST_CASE("the supervisor reports READY, STATUS with the generation, WATCHDOG while healthy, STOPPING") {
  softhsm_token t("sd-sup");
  broker_process s({local_member(t)}, std::string(quick) + "supervisor: { heartbeat_timeout: 1s }\n");
  s.use_supervisor();
  s.set_env("WATCHDOG_USEC", "300000");
  s.start();
  CHECK(s.await_notification("STATUS=generation 1: serving: 1 of 1 members", 5s));
  CHECK(s.await_notification("WATCHDOG=1", 2s));
  s.signal(SIGTERM);
  CHECK(s.await_notification("STOPPING=1", 5s));
  CHECK(eventually([&] { return !s.running(); }, 10s));
}

TEST_CASE("20 periodic restarts under load on the Unix socket and TCP: no failed request, no refused connection") {
  softhsm_token t("handoff");
  broker_process s({local_member(t)}, std::string(quick) + "supervisor: { restart_interval: 600ms, restart_jitter: 10%, drain_timeout: 5s }\n");
  s.use_supervisor();
  s.start();
  {
    auto c = s.unix_client();
    REQUIRE(call(c, "POST", "/v1/transit/keys/k", {{"type", "aes256-gcm96"}}).status == 200);
  }
  auto encrypt = [](int, int n) {
    return load_request{"POST", "/v1/transit/encrypt/k", R"({"plaintext":")" + b64("request " + std::to_string(n)) + R"("})"};
  };
  hsmb::client::endpoint unix_ep, tcp_ep;
  unix_ep.unix_path = s.socket_path();
  tcp_ep.host = "127.0.0.1";
  tcp_ep.port = s.http_port();
  {
    load_generator on_unix(unix_ep, 3, encrypt), on_tcp(tcp_ep, 3, health_probe);
    fresh_connections fresh(s.socket_path());
    INFO("supervisor log:\n" << s.log_tail(3000));
    REQUIRE(eventually([&] { return latest_generation(s) >= 21; }, 60s));
    on_unix.stop();
    on_tcp.stop();
    INFO("unix: " << on_unix.summary());
    INFO("tcp: " << on_tcp.summary());
    INFO("fresh connections: ok " << fresh.ok << ", failed " << fresh.failed << " " << fresh.error());
    MESSAGE("generations " << latest_generation(s) << "; unix: " << on_unix.summary() << "; tcp: " << on_tcp.summary()
                            << "; fresh connections: " << fresh.ok.load() << " ok");
    CHECK(on_unix.sent() > 500);
    CHECK(on_tcp.sent() > 500);
    CHECK(on_unix.failures() == 0);
    CHECK(on_tcp.failures() == 0);
    CHECK(fresh.ok > 100);
    CHECK(fresh.failed == 0);
  }
}

TEST_CASE("a broker killed with SIGKILL is replaced within seconds; no connection is refused meanwhile") {
  softhsm_token t("crash");
  broker_process s({local_member(t)}, quick);
  s.use_supervisor();
  s.start();
  fresh_connections fresh(s.socket_path());
  REQUIRE(eventually([&] { return fresh.ok > 20; }, 5s));
  pid_t victim = serving_broker(s);
  REQUIRE(victim > 0);
  auto killed_at = std::chrono::steady_clock::now();
  ::kill(victim, SIGKILL);
  REQUIRE(eventually([&] { return serving_broker(s) > 0 && serving_broker(s) != victim && healthy(s); }, 10s));
  auto back_after = std::chrono::steady_clock::now() - killed_at;
  MESSAGE("serving again after " << std::chrono::duration_cast<std::chrono::milliseconds>(back_after).count() << " ms");
  CHECK(back_after < 5s);
  int before = fresh.ok;
  REQUIRE(eventually([&] { return fresh.ok > before + 20; }, 5s));
  // Connections that reached the killed broker die with it; none is ever refused, because the
  // listening socket stays open in the supervisor.
  CHECK(fresh.error().find("refused") == std::string::npos);
  CHECK(fresh.failed <= 2);
}

TEST_CASE("a hung broker (SIGSTOP) misses its heartbeats and is replaced") {
  softhsm_token t("hang");
  broker_process s({local_member(t)}, std::string(quick) + "supervisor: { heartbeat_timeout: 1s }\n");
  s.use_supervisor();
  s.start();
  pid_t victim = serving_broker(s);
  REQUIRE(victim > 0);
  // Another local process sends heartbeats on the generation's behalf: they must not count.
  std::atomic<bool> stop_forging{false};
  std::thread forger([&] {
    std::string name = "@hsm-supervisor/" + std::to_string(s.pid()) + "/1";
    int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, name.data(), name.size());
    a.sun_path[0] = '\0';
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    while (!stop_forging) {
      ::sendto(fd, "WATCHDOG=1", 10, 0, reinterpret_cast<sockaddr*>(&a), len);
      std::this_thread::sleep_for(50ms);
    }
    ::close(fd);
  });
  ::kill(victim, SIGSTOP);
  auto stopped_at = std::chrono::steady_clock::now();
  bool replaced = eventually([&] { return ::kill(victim, 0) != 0 && healthy(s); }, 10s);
  stop_forging = true;
  forger.join();
  REQUIRE(replaced);
  auto replaced_after = std::chrono::steady_clock::now() - stopped_at;
  MESSAGE("replaced after " << std::chrono::duration_cast<std::chrono::milliseconds>(replaced_after).count() << " ms");
  CHECK(replaced_after >= 900ms);  // not before the heartbeat timeout
  CHECK(s.log_tail(6000).find("sent no heartbeat") != std::string::npos);
}

TEST_CASE("SIGHUP with a broken configuration keeps the running generation; a good one hands off") {
  softhsm_token t("reload");
  broker_process s({local_member(t)}, quick);
  s.use_supervisor();
  s.start();
  REQUIRE(s.await_notification("STATUS=generation 1", 5s));
  std::string good;
  {
    std::ifstream in(s.config_path());
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(s.config_path()) << good << "timeouts: { request: banana }\n";
  pid_t before = serving_broker(s);
  s.signal(SIGHUP);
  REQUIRE(eventually([&] { return s.log_tail(4000).find("configuration rejected") != std::string::npos; }, 5s));
  CHECK(serving_broker(s) == before);
  CHECK(healthy(s));
  std::ofstream(s.config_path()) << good;
  s.signal(SIGHUP);
  CHECK(s.await_notification("STATUS=generation 2", 10s));
  CHECK(eventually([&] { return serving_broker(s) != before && healthy(s); }, 10s));
}

namespace {

int listening_unix_socket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 64) == 0);
  return fd;
}

}  // namespace

TEST_CASE("socket activation: the supervisor and the broker serve on sockets passed in, not their own") {
  softhsm_token t("activation");
  for (std::string program : {"hsm-supervisor", "hsm-broker"}) {
    CAPTURE(program);
    broker_process p({local_member(t)}, quick);
    if (program == "hsm-supervisor") p.use_supervisor();
    auto activated = p.dir() + "/activated.sock";
    int fd = listening_unix_socket(activated);
    p.pass_sockets({{fd, "unix"}});
    p.start();
    ::close(fd);
    hsmb::client::endpoint ep;
    ep.unix_path = activated;
    hsmb::client::broker_client c(ep, 10s);
    CHECK(c.request("GET", "/v1/sys/health", "").status == 200);
    CHECK_FALSE(std::filesystem::exists(p.socket_path()));  // the configured socket was not made
  }
}

TEST_CASE("a new generation that is not READY in time is killed, and the old one keeps serving") {
  softhsm_token t("not-ready");
  broker_process s({local_member(t)}, std::string(quick) + "timeouts: { request: 5s }\nsupervisor: { ready_timeout: 1s }\n");
  s.use_supervisor();
  s.start();
  pid_t old = serving_broker(s);
  std::string good;
  {
    std::ifstream in(s.config_path());
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  // Passes --check, but the HSM refuses the PIN: the new broker waits for a member until
  // timeouts.request (5 s), longer than ready_timeout.
  std::ofstream(s.config_path()) << std::regex_replace(good, std::regex("value: \"1234\""), "value: \"9999\"");
  s.signal(SIGHUP);
  REQUIRE(eventually([&] { return s.log_tail(8000).find("not ready after 1000 ms") != std::string::npos; }, 10s));
  CHECK(::kill(old, 0) == 0);  // still there (the supervisor retries the hand-off with backoff meanwhile)
  CHECK(healthy(s));
  CHECK(latest_generation(s) == 1);
  // The retries go on: once the configuration works again, a later one succeeds.
  std::ofstream(s.config_path()) << good;
  CHECK(eventually([&] { return latest_generation(s) >= 2; }, 20s));
  CHECK(healthy(s));
}
