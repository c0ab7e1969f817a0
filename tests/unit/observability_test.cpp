// Log lines (common/log_line.h), error names printed once, the latency histogram and the
// request counters behind /metrics.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "api/metrics/request_metrics.h"
#include "common/latency_histogram.h"
#include "common/log_line.h"
#include "hsm_backends/hsm_error.h"
#include "hsm_backends/pkcs11/p11.h"

using namespace hsmb;
namespace json = boost::json;

TEST_CASE("a JSON log line parses and carries journald's fields, the generation and the member") {
  logline::record r{std::chrono::system_clock::now(), "warning", "hsm-broker", 42, 3, {},
                    "member hsm-a: serving -> down: \"quoted\"\n\tand a tab \x01"};
  auto line = logline::json_line(r);
  REQUIRE(line.ends_with("}\n"));
  CHECK(line.find('\n') == line.size() - 1);  // one line, whatever the message holds
  auto v = json::parse(line).as_object();
  CHECK(v.at("MESSAGE").as_string() == r.message);
  CHECK(v.at("PRIORITY").as_string() == "4");
  CHECK(v.at("SYSLOG_IDENTIFIER").as_string() == "hsm-broker");
  CHECK(v.at("SYSLOG_PID").as_string() == "42");
  CHECK(v.at("generation").as_int64() == 3);
  CHECK(v.at("member").as_string() == "hsm-a");
  CHECK(v.at("level").as_string() == "warning");
  CHECK(std::string(v.at("time").as_string()).ends_with("Z"));
  logline::record plain{std::chrono::system_clock::now(), "info", "hsm-worker", 7, std::nullopt, "hsm-b", "serving"};
  auto p = json::parse(logline::json_line(plain)).as_object();
  CHECK(p.at("member").as_string() == "hsm-b");
  CHECK_FALSE(p.contains("generation"));
  CHECK(logline::member_of("member x y: no") == "");
  CHECK(logline::member_of("listening on unix") == "");
  CHECK(logline::priority("critical") == 2);
  CHECK(logline::priority("debug") == 7);
}

TEST_CASE("JSON strings: well-formed UTF-8 passes through, any other byte is U+FFFD, so a strict reader takes the line") {
  auto escaped = [](std::string_view s) {
    std::string out = "\"";
    logline::append_json_escaped(out, s);
    return out + "\"";
  };
  auto parsed = [&](std::string_view s) { return std::string(json::parse(escaped(s)).as_string()); };  // Boost.JSON rejects bad UTF-8
  const std::string good = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91";  // é, €, a key emoji
  CHECK(escaped(good) == "\"" + good + "\"");
  CHECK(parsed("/v1/transit/keys/\xff\xfe") == "/v1/transit/keys/\xef\xbf\xbd\xef\xbf\xbd");
  const std::string_view bad[] = {
      "\x80",              // a continuation byte alone
      "\xc3",              // cut short at the end
      "\xc3(",             // cut short by ASCII
      "\xc0\xaf",          // overlong '/'
      "\xe0\x80\xaf",      // overlong '/', three bytes
      "\xed\xa0\x80",      // a UTF-16 surrogate
      "\xf4\x90\x80\x80",  // past U+10FFFF
      "\xf8\x88\x80\x80\x80",
  };
  for (auto b : bad) {
    CAPTURE(escaped(b));
    std::string back;
    REQUIRE_NOTHROW(back = parsed(b));
    CHECK(back.find("\xef\xbf\xbd") != std::string::npos);
    CHECK(back.find('/') == std::string::npos);  // no overlong form decodes to the byte it hides
  }
  CHECK(parsed("a\xc3(b") == "a\xef\xbf\xbd(b");  // the byte after a broken sequence is kept
}

TEST_CASE("an error's name is printed once, even when its message holds it") {
  hsm_error named{CKR_DEVICE_ERROR, "C_Sign: CKR_DEVICE_ERROR"};
  CHECK(with_name(named) == "C_Sign: CKR_DEVICE_ERROR");
  hsm_error plain{CKR_DEVICE_ERROR, "the device is gone"};
  CHECK(with_name(plain) == "the device is gone (CKR_DEVICE_ERROR)");
  CHECK(with_name(broker_fault(fault::call_timeout, "no answer")) == "no answer (HSMB_CALL_TIMEOUT)");
}

TEST_CASE("latency histogram: each sample in its bucket, sum and count") {
  latency_histogram h;
  h.record(std::chrono::microseconds(300));   // <= 0.5 ms
  h.record(std::chrono::microseconds(1000));  // <= 1 ms (bounds are inclusive)
  h.record(std::chrono::seconds(30));         // above 10 s: +Inf only
  CHECK(h.bucket(0) == 1);
  CHECK(h.bucket(1) == 1);
  CHECK(h.bucket(latency_histogram::bounds.size()) == 1);
  CHECK(h.count() == 3);
  CHECK(h.sum_seconds() == doctest::Approx(30.0013));
}

TEST_CASE("request counters by route and status code; unknown codes are 'other'") {
  api::request_metrics m(3);
  m.record(1, 200, std::chrono::milliseconds(2));
  m.record(1, 200, std::chrono::milliseconds(2));
  m.record(1, 418, std::chrono::milliseconds(2));
  m.record(99, 404, std::chrono::milliseconds(1));  // beyond the table: unmatched
  CHECK(m.count(1, 0) == 2);
  CHECK(m.count(1, api::request_metrics::other_code) == 1);
  CHECK(m.count(m.unmatched(), 4) == 1);  // codes[4] == 404
  CHECK(m.duration(1).count() == 3);
}
