// The logs (README "Logs and metrics") of real processes: every line of every program has a time
// and a level, a broker generation's lines (its workers' too) carry its tag, a reload is logged
// as one, a down member is told once and not at every retry, and HSMB_LOG_FORMAT=json gives one
// JSON object per line with journald's fields.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>

#include <regex>
#include <sstream>
#include <vector>

#include "tests/integration/broker_fixture.h"

using namespace hsmb::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

std::size_t count_containing(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto& line : lines_of(text)) n += line.find(needle) != std::string::npos;
  return n;
}

member_spec member_of(const std::string& name, const softhsm_token& t, const std::string& label) {
  return {name, softhsm_token::module_path(), label, t.pin(), {{"SOFTHSM2_CONF", t.conf_path()}}};
}

// hsm-b's failed starts so far, from /v1/broker/members.
std::uint64_t errors_of(broker_process& b, const std::string& member) {
  auto c = b.unix_client();
  auto r = call(c, "GET", "/v1/broker/members");
  for (auto& m : r.data().at("members").as_array())
    if (m.at("name").as_string() == member) return m.at("errors").to_number<std::uint64_t>();
  return 0;
}

const std::string quick = "health: { probe_interval: 200ms, max_backoff: 300ms }\ntimeouts: { request: 2s, call: 1s }\n";

}  // namespace

TEST_CASE("a down member is logged when it goes down and when it is back, not at every retry") {
  softhsm_token t("hsm-a");
  broker_process b({member_of("hsm-a", t, t.label()), member_of("hsm-b", t, "late")}, quick);
  b.start();
  // Ten failed retries at least (about 2-3 s): one line each, or three, without the rate limit.
  REQUIRE_MESSAGE(eventually([&] { return errors_of(b, "hsm-b") >= 10; }, 20s), b.log_tail());
  auto log = b.log_tail(1 << 20);
  auto about_b = count_containing(log, "member hsm-b");
  MESSAGE("lines about hsm-b while down: " << about_b << "\n" << log);
  CHECK(about_b <= 3);
  CHECK(count_containing(log, "hsm-b: starting -> down: cannot start: ") == 1);
  CHECK(count_containing(log, "open failed") == 0);
  CHECK(count_containing(log, "hsm-worker") == 1);  // hsm-a's "serving token"; hsm-b's workers say nothing
  t.add_token("late");
  REQUIRE_MESSAGE(eventually([&] { return b.log_tail(1 << 20).find("member hsm-b: syncing -> serving") != std::string::npos; }, 20s),
                  b.log_tail());
  log = b.log_tail(1 << 20);
  CHECK(std::regex_search(log, std::regex("member hsm-b: down -> syncing after [0-9]+s \\([0-9]+ more failed attempts\\)")));
}

TEST_CASE("every line has a time and a level; generations are tagged; a reload is logged as one") {
  softhsm_token t("hsm-a");
  broker_process s({member_of("hsm-a", t, t.label())}, quick);
  s.use_supervisor();
  s.start();
  REQUIRE(s.await_notification("STATUS=generation 1", 10s));
  s.signal(SIGHUP);
  REQUIRE(s.await_notification("STATUS=generation 2", 20s));
  REQUIRE(eventually([&] { return s.log_tail(1 << 20).find("[gen 2] ready:") != std::string::npos; }, 10s));
  auto log = s.log_tail(1 << 20);
  static const std::regex stamped(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} (debug|info|warning|error|critical) .+)");
  for (auto& line : lines_of(log)) CHECK_MESSAGE(std::regex_match(line, stamped), line);
  CHECK(std::regex_search(log, std::regex(R"(info \[gen 1\] hsm-worker\[\d+\] member hsm-a: serving token 'hsm-a')")));
  CHECK(std::regex_search(log, std::regex(R"(info \[gen 2\] hsm-worker\[\d+\] member hsm-a: serving token)")));
  CHECK(std::regex_search(log, std::regex(R"(info \[gen 1\] ready: 1 of 1 members serving)")));
  CHECK(count_containing(log, "info configuration OK: 1 member(s)") >= 2);  // start-up and SIGHUP checks
  CHECK(log.find("supervisor: generation 2 starting") != std::string::npos);
  CHECK(log.find("configuration reloaded (SIGHUP)") != std::string::npos);
  CHECK(log.find("generation 1 draining: replaced by generation 2 (configuration reloaded (SIGHUP))") != std::string::npos);
  CHECK(log.find("periodic restart") == std::string::npos);
}

TEST_CASE("HSMB_LOG_FORMAT=json: one JSON object per line, with journald's fields") {
  softhsm_token t("hsm-a");
  broker_process s({member_of("hsm-a", t, t.label()), member_of("hsm-b", t, "missing")}, quick);
  s.set_env("HSMB_LOG_FORMAT", "json");
  s.use_supervisor();
  s.start();
  REQUIRE(eventually([&] { return s.log_tail(1 << 20).find("\"MESSAGE\":\"ready:") != std::string::npos; }, 10s));
  bool worker = false, down = false, supervisor = false;
  for (auto& line : lines_of(s.log_tail(1 << 20))) {
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    REQUIRE_MESSAGE(!ec, line);
    auto& o = v.as_object();
    CHECK(o.contains("MESSAGE"));
    CHECK(o.contains("PRIORITY"));
    CHECK(o.contains("time"));
    auto id = std::string(o.at("SYSLOG_IDENTIFIER").as_string());
    if (id == "hsm-worker") {
      worker = true;
      CHECK(o.at("generation").as_int64() == 1);
      CHECK(o.contains("member"));
    }
    if (id == "hsm-broker" && o.contains("member") && o.at("member").as_string() == "hsm-b" &&
        o.at("PRIORITY").as_string() == "4")
      down = o.at("generation").as_int64() == 1;
    supervisor |= id == "hsm-supervisor";
  }
  CHECK(worker);
  CHECK(down);
  CHECK(supervisor);
}
