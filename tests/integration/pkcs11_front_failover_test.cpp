// The war story through the PKCS#11 front module: an application (p11_app, which dlopens the
// module) signs in a loop while HSM1 dies (SIGKILL), returns, the application goes quiet, and
// HSM2 dies. The HSMs are network HSMs (SoftHSM2 behind `p11-kit server`), as in failover_test.
// Also: the module's leak check (10,000 signs, 100 Initialize/Finalize cycles), and what an
// outage the broker cannot cover, or no broker at all, looks like to the application.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/integration/broker_fixture.h"
#include "tests/lib/network_hsm.h"
#include "tests/lib/temp_dir.h"

using namespace hsmb::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string module_path = HSMB_PKCS11_MODULE;
const std::string p11_app = HSMB_P11_APP;
const std::string fast_health = "health: { probe_interval: 500ms, idle_probe_interval: 500ms }\ntimeouts: { request: 5s, call: 1s }\n";

std::map<std::string, std::string> fields(const std::string& out) {
  std::map<std::string, std::string> m;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (auto eq = line.find('='); eq != std::string::npos) m[line.substr(0, eq)] = line.substr(eq + 1);
  return m;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// p11_app sign-loop in the background: its progress file says how many signs it made.
class signing_app {
 public:
  signing_app(const std::string& socket, const fs::path& dir) : progress_(dir / "progress"), pause_(dir / "pause"), out_(dir / "out") {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setenv("HSM_BROKER_SOCKET", socket.c_str(), 1);
      int fd = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::execl(p11_app.c_str(), p11_app.c_str(), module_path.c_str(), "sign-loop", "load", progress_.c_str(), pause_.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~signing_app() {
    if (pid_ > 0) finish();
  }
  long calls() {
    std::istringstream in(read_file(progress_));
    long n = 0;
    in >> n;
    return n;
  }
  bool paused() { return read_file(progress_).find("paused") != std::string::npos; }
  void pause() { std::ofstream(pause_) << "quiet\n"; }
  void resume() { fs::remove(pause_); }
  std::map<std::string, std::string> finish() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return fields(read_file(out_));
  }

 private:
  fs::path progress_, pause_, out_;
  pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("the war story through the module: HSM1 dies and returns, quiet period, HSM2 dies: 0 failed calls") {
  network_cluster hsms{2, [](network_hsm& first) { provision(first, "load", "ecdsa-p256"); }};
  broker_process b(hsms.members(), fast_health);
  b.start();
  REQUIRE_MESSAGE(eventually([&] { return member_state(b, "hsm1") == "serving" && member_state(b, "hsm2") == "serving"; }, 10s),
                  b.log_tail());
  temp_dir dir("hsmb-p11-war");
  signing_app app(b.socket_path(), dir.path);
  REQUIRE_MESSAGE(eventually([&] { return app.calls() > 100; }, 15s), "the application made no progress; broker:\n" << b.log_tail());
  hsms[0].kill();
  REQUIRE_MESSAGE(eventually([&] { return member_state(b, "hsm1") == "down"; }, 5s), b.log_tail());
  long at_down = app.calls();
  REQUIRE(eventually([&] { return app.calls() > at_down + 100; }, 10s));  // served on without it
  hsms[0].start();
  REQUIRE_MESSAGE(eventually([&] { return member_state(b, "hsm1") == "serving"; }, 5s), b.log_tail());
  app.pause();
  REQUIRE(eventually([&] { return app.paused(); }, 5s));
  std::this_thread::sleep_for(3s);  // the scenario: several seconds with no traffic at all
  hsms[1].kill();
  long before = app.calls();
  app.resume();
  REQUIRE_MESSAGE(eventually([&] { return app.calls() > before + 300; }, 15s), b.log_tail());
  auto result = app.finish();
  MESSAGE("through the module: calls=" << result["calls"] << " failures=" << result["failures"]
                                       << " worst_ms=" << result["worst_ms"]);
  CHECK_MESSAGE(result["failures"] == "0", "first error " << result["first_error"]);
  CHECK(std::stol(result["calls"]) > 500);
  CHECK(member_state(b, "hsm1") == "serving");
  CHECK(eventually([&] { return member_state(b, "hsm2") == "down"; }, 5s));
}

TEST_CASE("broker hand-offs every 700 ms and a broker crash under the module's signing loop: the module retries, 0 failed calls") {
  softhsm_token token{"p11-handoff"};
  member_spec m{"hsm-a", softhsm_token::module_path(), token.label(), token.pin(), {{"SOFTHSM2_CONF", token.conf_path()}}};
  broker_process s({m}, "supervisor: { restart_interval: 700ms, restart_jitter: 10%, drain_timeout: 5s }\n");
  s.use_supervisor();
  s.start();
  auto c = s.unix_client();
  REQUIRE(call(c, "POST", "/v1/transit/keys/load", {{"type", "ecdsa-p256"}}).status == 200);
  temp_dir dir("hsmb-p11-handoff");
  signing_app app(s.socket_path(), dir.path);
  REQUIRE_MESSAGE(eventually([&] { return app.calls() > 100; }, 15s), s.log_tail());
  REQUIRE_MESSAGE(s.await_notification("STATUS=generation 5:", 30s), s.log_tail());  // hand-offs under load
  long before_crash = app.calls();
  for (pid_t broker : s.worker_pids()) ::kill(broker, SIGKILL);  // the serving generation dies; the supervisor starts another
  REQUIRE_MESSAGE(eventually([&] { return app.calls() > before_crash + 200; }, 20s), s.log_tail());
  auto result = app.finish();
  MESSAGE("through hand-offs and a crash: calls=" << result["calls"] << " failures=" << result["failures"]
                                                  << " worst_ms=" << result["worst_ms"]);
  CHECK_MESSAGE(result["failures"] == "0", "first error " << result["first_error"] << "\n" << s.log_tail());
}

TEST_CASE("an outage the broker cannot cover is CKR_DEVICE_ERROR; no broker at all is CKR_DEVICE_ERROR within HSM_BROKER_TIMEOUT") {
  network_cluster hsms{1, [](network_hsm& first) { provision(first, "load", "ecdsa-p256"); }};
  broker_process b(hsms.members(), "health: { probe_interval: 500ms, idle_probe_interval: 500ms }\ntimeouts: { request: 2s, call: 1s }\n");
  b.start();
  std::string out;
  auto sign = [&](const std::string& socket, const std::string& timeout) {
    run_command("HSM_BROKER_SOCKET=" + socket + " HSM_BROKER_TIMEOUT=" + timeout + " " + p11_app + " " + module_path + " rv load", &out);
    return fields(out);
  };
  CHECK(sign(b.socket_path(), "5s")["rv"] == "0x0");
  hsms[0].kill();
  auto down = sign(b.socket_path(), "5s");
  CHECK_MESSAGE(down["rv"] == "0x30", out);  // CKR_DEVICE_ERROR
  temp_dir dir("hsmb-p11-none");
  auto none = sign((dir.path / "no-broker.sock").string(), "700ms");
  CHECK_MESSAGE(none["rv"] == "0x30", out);
  CHECK_MESSAGE(std::stod(none["ms"]) >= 600, "gave up before the deadline: " << out);  // retried meanwhile
  CHECK_MESSAGE(std::stod(none["ms"]) < 5000, out);
}

TEST_CASE("leak check: 10,000 signs and 100 Initialize/Finalize cycles leave memory flat and no descriptor open") {
  softhsm_token token{"hsm-a"};
  member_spec m{"hsm-a", softhsm_token::module_path(), token.label(), token.pin(), {{"SOFTHSM2_CONF", token.conf_path()}}};
  broker_process b({m});
  b.start();
  auto c = b.unix_client();
  REQUIRE(call(c, "POST", "/v1/transit/keys/load", {{"type", "ecdsa-p256"}}).status == 200);
  std::string out;
  int rc = run_command("HSM_BROKER_SOCKET=" + b.socket_path() + " " + p11_app + " " + module_path + " leak load 10000 100", &out);
  REQUIRE_MESSAGE(rc == 0, out);
  auto f = fields(out);
  long growth = std::stol(f["rss_after_kib"]) - std::stol(f["rss_before_kib"]);
  MESSAGE("leak check: RSS " << f["rss_before_kib"] << " -> " << f["rss_after_kib"] << " KiB, descriptors " << f["fds_before"]
                             << " -> " << f["fds_after"] << ", " << f["seconds"] << " s");
  CHECK_MESSAGE(growth < 1024, out);  // after a warm-up of a tenth of the work: flat within 1 MiB
  CHECK_MESSAGE(f["fds_after"] == f["fds_before"], out);
}
