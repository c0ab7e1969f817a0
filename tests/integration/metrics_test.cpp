// /metrics of a real broker (README "Logs and metrics"): latency histograms per member and
// operation and per route, requests by route and status code, the callers' gate's and the audit
// trail's counters; `promtool check metrics` finds nothing to say; every metric the example
// Grafana dashboard (deploy/grafana-dashboard.json) queries exists.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fstream>
#include <regex>
#include <set>
#include <utility>

#include "tests/integration/broker_fixture.h"
#include "tests/integration/token_binding.h"
#include "tests/lib/temp_dir.h"

using namespace hsmb::test;
namespace json = boost::json;

namespace {

const std::string limited_token = "limited-token-for-the-metrics-test";

struct metrics_broker {
  hsmb::test::temp_dir dir;
  std::unique_ptr<single_member_broker> b;
  metrics_broker() {
    std::string yaml = "audit: { file: " + (dir.path / "audit.log").string() + " }\nauth:\n  tokens:\n" +
                       token_binding("limited", limited_token, "admin", ", rate: { per_second: 1, burst: 1 }") +
                       "  unix:\n    - { uid: 0, policies: [admin] }\n" +
                       "policies:\n  admin:\n    - { path: \"*\", capabilities: [create, read, update, delete, list, sudo] }\n";
    b = std::make_unique<single_member_broker>(yaml);
  }
};

metrics_broker& broker() {
  static metrics_broker m;
  return m;
}

std::string scrape() {
  auto c = broker().b->broker->unix_client();
  auto r = c.request("GET", "/metrics");
  REQUIRE(r.status == 200);
  return r.body;
}

// The value of the sample line that starts with `series` (name and labels), or -1.
double value_of(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Traffic of every kind the metrics count, once: encrypts, a 404, a 403, 429s.
void make_traffic() {
  static bool done = false;
  if (std::exchange(done, true)) return;
  auto c = broker().b->broker->unix_client();
  REQUIRE(call(c, "POST", "/v1/transit/keys/m").status == 200);
  for (int i = 0; i < 5; ++i)
    REQUIRE(call(c, "POST", "/v1/transit/encrypt/m", {{"plaintext", b64("x")}}).status == 200);
  CHECK(call(c, "GET", "/v1/nowhere").status == 404);
  CHECK(c.request("GET", "/v1/transit/keys/m", "", "not-a-known-token").status == 403);
  int limited = 0;
  for (int i = 0; i < 3; ++i) limited += c.request("GET", "/v1/transit/keys/m", "", limited_token).status == 429;
  CHECK(limited >= 1);
}

}  // namespace

TEST_CASE("histograms, request counts, gate and audit counters") {
  make_traffic();
  auto text = scrape();
  CHECK(value_of(text, R"(hsmb_requests_total{route="encrypt",code="200"})") == 5);
  CHECK(value_of(text, R"(hsmb_requests_total{route="unmatched",code="404"})") == 1);
  CHECK(value_of(text, R"(hsmb_requests_total{route="read_key",code="429"})") >= 1);
  CHECK(value_of(text, R"(hsmb_request_duration_seconds_count{route="encrypt"})") == 5);
  CHECK(value_of(text, R"(hsmb_request_duration_seconds_bucket{route="encrypt",le="+Inf"})") == 5);
  CHECK(value_of(text, R"(hsmb_member_call_duration_seconds_count{member="hsm-a",op="encrypt"})") >= 5);
  CHECK(value_of(text, R"(hsmb_member_call_duration_seconds_bucket{member="hsm-a",op="encrypt",le="10"})") >= 5);
  CHECK(value_of(text, R"(hsmb_member_call_duration_seconds_sum{member="hsm-a",op="encrypt"})") > 0);
  CHECK(value_of(text, "hsmb_auth_denied_total") >= 1);
  CHECK(value_of(text, "hsmb_rate_limited_total") >= 1);
  CHECK(value_of(text, "hsmb_audit_lines_total") >= 14);  // two per audited request
  CHECK(value_of(text, "hsmb_audit_refused_total") == 0);
  CHECK(value_of(text, R"(hsmb_member_up{member="hsm-a"})") == 1);
}

TEST_CASE("promtool check metrics: clean") {
  make_traffic();
  hsmb::test::temp_dir dir;
  auto file = (dir.path / "metrics.txt").string();
  std::ofstream(file) << scrape();
  std::string out;
  int rc = run_command("promtool check metrics < " + file, &out);
  CHECK_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.empty(), out);
}

TEST_CASE("the example Grafana dashboard is JSON and queries only metrics that exist") {
  make_traffic();
  auto text = scrape();
  auto dashboard = read_file(std::string(HSMB_SOURCE_DIR) + "/deploy/grafana-dashboard.json");
  boost::system::error_code ec;
  auto v = json::parse(dashboard, ec);
  REQUIRE_MESSAGE(!ec, "deploy/grafana-dashboard.json is not JSON: " << ec.message());
  std::set<std::string> queried;
  static const std::regex name(R"(hsmb_[a-z0-9_]+)");
  for (auto& panel : v.at("panels").as_array())
    for (auto& target : panel.at("targets").as_array()) {
      auto expr = std::string(target.at("expr").as_string());
      for (std::sregex_iterator it(expr.begin(), expr.end(), name), end; it != end; ++it) queried.insert(it->str());
    }
  CHECK(queried.size() >= 15);
  for (auto& metric : queried) {
    bool present = text.find("\n" + metric + "{") != std::string::npos || text.find("\n" + metric + " ") != std::string::npos;
    CHECK_MESSAGE(present, metric << " is queried by the dashboard but not in /metrics");
  }
}
