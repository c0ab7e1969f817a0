// The audit trail's parts: redaction of every secret field at any depth, the hash chain and its
// verification (an edited, removed or moved line is found at that line), the file sink across two
// writers, the request/response lines, fail-closed, and the audit: configuration section.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <optional>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "api/audit/audit_log.h"
#include "api/audit/group_commit.h"
#include "api/audit/chain.h"
#include "api/audit/file_sink.h"
#include "api/audit/redaction.h"
#include "broker/config.h"
#include "tests/lib/run_awaitable.h"
#include "tests/lib/temp_dir.h"

using namespace hsmb;
using namespace hsmb::api;
using hsmb::test::run_awaitable;
namespace json = boost::json;
namespace fs = std::filesystem;

using hsmb::test::read_lines;
using hsmb::test::temp_dir;

namespace {

// A JSON value as text: a string's content, otherwise its JSON.
std::string s(const json::value& v) { return v.is_string() ? std::string(v.get_string()) : json::serialize(v); }

audit::audit_key test_key() {
  audit::audit_key k;
  k.set(secure_bytes(32, 0x42));
  return k;
}

void write_lines(const fs::path& p, const std::vector<std::string>& lines) {
  std::ofstream out(p, std::ios::trunc);
  for (auto& l : lines) out << l << "\n";
}

audit::verify_result verify_file(const fs::path& p) {
  std::ifstream in(p);
  return audit::verify_chain(in);
}

const char* secret_fields[] = {"plaintext", "ciphertext", "input",        "signature", "hmac",  "context",
                               "associated_data", "random_bytes", "sum", "token", "client_token"};

// An audit log with its key set, in a temporary directory.
struct keyed_log {
  temp_dir dir;
  fs::path path = dir.path / "audit.log";
  audit::audit_log log{path.string(), true};
  keyed_log() { log.key().set(secure_bytes(32, 7)); }
};

request post(std::string_view target, std::string_view body = "") {
  request r;
  r.method = "POST";
  r.target = target;
  r.body = body;
  r.remote_address = "unix";
  return r;
}

}  // namespace

TEST_CASE("audit key: HMAC-SHA256 under the key (RFC 4231 case 2); unavailable before it is known") {
  audit::audit_key k;
  CHECK(!k.ready());
  CHECK(k.hash("x") == "hmac-sha256:unavailable");
  std::string jefe = "Jefe";
  k.set(secure_bytes(jefe.begin(), jefe.end()));
  CHECK(k.hash("what do ya want for nothing?") ==
        "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("redaction: every secret field, at the top and inside batch entries, becomes its hash") {
  auto key = test_key();
  json::object top{{"name", "billing"}, {"key_version", 2}};
  json::array batch;
  for (auto* f : secret_fields) {
    top[f] = std::string("top-") + f;
    batch.push_back(json::object{{f, std::string("item-") + f}, {"reference", "r1"}});
  }
  top["batch_input"] = batch;
  top["batch_results"] = batch;
  top["nested"] = json::object{{"deeper", json::object{{"plaintext", "deep"}}}};
  top["context"] = json::object{{"not", "a string"}};
  std::string text;
  audit::append_redacted(text, json::value(top), key);
  auto v = json::parse(text);
  for (auto* f : secret_fields) {
    CAPTURE(f);
    CHECK(text.find(std::string("top-") + f) == std::string::npos);
    CHECK(text.find(std::string("item-") + f) == std::string::npos);
    auto i = std::size_t(std::find(std::begin(secret_fields), std::end(secret_fields), std::string_view(f)) - std::begin(secret_fields));
    CHECK(s(v.at("batch_input").at(i).at(f)) == key.hash(std::string("item-") + f));
    CHECK(s(v.at("batch_results").at(i).at(f)) == key.hash(std::string("item-") + f));
  }
  CHECK(s(v.at("plaintext")) == key.hash("top-plaintext"));
  CHECK(s(v.at("nested").at("deeper").at("plaintext")) == key.hash("deep"));
  CHECK(s(v.at("context")) == key.hash(R"({"not":"a string"})"));
  CHECK(s(v.at("name")) == "billing");
  CHECK(s(v.at("key_version")) == "2");
  CHECK(s(v.at("batch_input").at(0).at("reference")) == "r1");
}

TEST_CASE("chain: a sealed line ends with the chain field; the chain links each line to the one before") {
  std::string body = R"({"a":1})";
  auto line = audit::seal_line(audit::chain_start, body);
  CHECK(line == R"({"a":1,"chain":")" + audit::chain_next(audit::chain_start, body) + "\"}\n");
  CHECK(audit::chain_of(line) == audit::chain_next(audit::chain_start, body));
  CHECK(!audit::chain_of(R"({"a":1})"));
  std::stringstream two(line + audit::seal_line(*audit::chain_of(line), R"({"b":2})"));
  auto r = audit::verify_chain(two);
  CHECK(r.ok);
  CHECK(r.lines == 2);
}

TEST_CASE("verify: an edited, removed or reordered line is reported at its line number") {
  temp_dir dir;
  auto path = dir.path / "audit.log";
  {
    audit::file_sink sink(path.string());
    for (int i = 1; i <= 5; ++i) REQUIRE(sink.append("{\"n\":" + std::to_string(i) + "}"));
  }
  auto lines = read_lines(path);
  REQUIRE(lines.size() == 5);
  auto ok = verify_file(path);
  CHECK(ok.ok);
  CHECK(ok.lines == 5);

  SUBCASE("edited") {
    auto edited = lines;
    edited[2].replace(edited[2].find("\"n\":3"), 5, "\"n\":7");
    write_lines(path, edited);
    auto r = verify_file(path);
    CHECK(!r.ok);
    CHECK(r.first_bad == 3);
  }
  SUBCASE("removed") {
    auto removed = lines;
    removed.erase(removed.begin() + 1);
    write_lines(path, removed);
    auto r = verify_file(path);
    CHECK(!r.ok);
    CHECK(r.first_bad == 2);
  }
  SUBCASE("reordered") {
    auto moved = lines;
    std::swap(moved[3], moved[4]);
    write_lines(path, moved);
    auto r = verify_file(path);
    CHECK(!r.ok);
    CHECK(r.first_bad == 4);
  }
  SUBCASE("chain field stripped") {
    auto stripped = lines;
    stripped[0] = R"({"n":1})";
    write_lines(path, stripped);
    CHECK(verify_file(path).first_bad == 1);
  }
}

TEST_CASE("file sink: two writers on one file (a hand-off's two generations) keep one chain; reopen after rotation starts afresh") {
  temp_dir dir;
  auto path = dir.path / "audit.log";
  audit::file_sink a(path.string()), b(path.string());
  REQUIRE(a.append(R"({"w":"a1"})"));
  REQUIRE(b.append(R"({"w":"b1"})"));
  REQUIRE(a.append(R"({"w":"a2"})"));
  REQUIRE(b.append(R"({"w":"b2"})"));
  auto r = verify_file(path);
  CHECK(r.ok);
  CHECK(r.lines == 4);

  fs::rename(path, dir.path / "audit.log.1");  // logrotate
  REQUIRE(a.append(R"({"w":"a3"})"));         // still the rotated file until reopened
  a.reopen();
  REQUIRE(a.append(R"({"w":"a4"})"));
  CHECK(verify_file(dir.path / "audit.log.1").lines == 5);
  CHECK(verify_file(dir.path / "audit.log.1").ok);
  auto fresh = read_lines(path);
  REQUIRE(fresh.size() == 1);
  CHECK(audit::chain_of(fresh[0]) == audit::chain_next(audit::chain_start, R"({"w":"a4"})"));
}

TEST_CASE("audit log: a request line and a response line sharing request.id, secrets hashed") {
  keyed_log k;
  auto& [dir, path, log] = k;
  auto req = post("/v1/transit/encrypt/billing?x=1", R"({"plaintext":"aGVsbG8=","batch_input":[{"plaintext":"c2VjcmV0"}]})");
  caller who{caller_kind::token, "token-billing-app", {"billing"}, 1001, {}, {}, {}, {}};
  audit::ticket t;
  REQUIRE(!run_awaitable(log.begin(req, who, "update", t)));
  auto answer = run_awaitable(log.finish(t, response{200, R"({"data":{"ciphertext":"vault:v1:abc","key_version":1}})"}));
  CHECK(answer.status == 200);
  auto lines = read_lines(path);
  REQUIRE(lines.size() == 2);
  auto q = json::parse(lines[0]).as_object();
  auto a = json::parse(lines[1]).as_object();
  CHECK(s(q.at("type")) == "request");
  CHECK(std::regex_match(s(q.at("time")), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
  CHECK(std::regex_match(s(q.at("request").at("id")), std::regex(R"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")));
  CHECK(s(a.at("type")) == "response");
  CHECK(s(q.at("request").at("id")) == s(a.at("request").at("id")));
  CHECK(s(q.at("request").at("path")) == "transit/encrypt/billing");
  CHECK(s(q.at("request").at("operation")) == "update");
  CHECK(s(q.at("request").at("remote_address")) == "unix");
  CHECK(s(q.at("auth").at("display_name")) == "token-billing-app");
  CHECK(s(q.at("auth").at("policies").at(0)) == "billing");
  CHECK(s(q.at("auth").at("metadata").at("uid")) == "1001");
  CHECK(s(q.at("request").at("data").at("plaintext")) == log.key().hash("aGVsbG8="));
  CHECK(s(q.at("request").at("data").at("batch_input").at(0).at("plaintext")) == log.key().hash("c2VjcmV0"));
  CHECK(s(a.at("response").at("status")) == "200");
  CHECK(s(a.at("response").at("data").at("ciphertext")) == log.key().hash("vault:v1:abc"));
  CHECK(s(a.at("response").at("data").at("key_version")) == "1");
  CHECK(lines[0].find("aGVsbG8=") == std::string::npos);
  CHECK(lines[1].find("vault:v1:abc") == std::string::npos);
  CHECK(lines[1].rfind(",\"chain\":\"") == lines[1].size() - 76);  // the chain field is last
  CHECK(verify_file(path).ok);
}

TEST_CASE("audit log: a response's kept data object is written as its parsed body would be, secrets hashed") {
  keyed_log k;
  auto& [dir, path, log] = k;
  const std::string body = R"({"data":{"batch_results":[{"ciphertext":"vault:v1:abc","key_version":1}],"plaintext":"cGxhaW4="}})";
  auto data = std::make_shared<const json::object>(json::parse(body).as_object().at("data").as_object());
  caller who{caller_kind::anyone, "anyone", {}, {}, {}, {}, {}, {}};
  auto req = post("/v1/transit/encrypt/billing", "{}");
  std::vector<std::string> tails;
  for (bool kept : {false, true}) {
    audit::ticket t;
    REQUIRE(!run_awaitable(log.begin(req, who, "update", t)));
    response answer{200, body};
    if (kept) answer.data = data;
    run_awaitable(log.finish(t, std::move(answer)));
    auto line = read_lines(path).back();
    tails.push_back(line.substr(line.find(R"(,"response":)"), line.rfind(R"(,"chain":)") - line.find(R"(,"response":)")));
  }
  CHECK(tails[0] == tails[1]);
  CHECK(tails[1].find(log.key().hash("vault:v1:abc")) != std::string::npos);
  CHECK(tails[1].find(log.key().hash("cGxhaW4=")) != std::string::npos);
  CHECK(tails[1].find("vault:v1:abc") == std::string::npos);
  CHECK(tails[1].find("cGxhaW4=") == std::string::npos);
}

TEST_CASE("audit log: fail_closed refuses without the key or without a writable file; fail-open serves") {
  temp_dir dir;
  request req;
  req.method = "POST";
  req.target = "/v1/transit/random/8";
  caller anyone{caller_kind::anyone, "anyone", {}, {}, {}, {}, {}, {}};
  audit::ticket t;

  audit::audit_log closed((dir.path / "a.log").string(), true);
  auto refused = run_awaitable(closed.begin(req, anyone, "update", t));
  REQUIRE(refused);
  CHECK(refused->status == 503);

  audit::audit_log open((dir.path / "b.log").string(), false);
  CHECK(!run_awaitable(open.begin(req, anyone, "update", t)));
  auto answer = run_awaitable(open.finish(t, response{200, R"({"data":{"random_bytes":"AAAA"}})"}));
  CHECK(answer.status == 200);
  auto lines = read_lines(dir.path / "b.log");
  REQUIRE(lines.size() == 2);
  CHECK(lines[1].find(R"("random_bytes":"hmac-sha256:unavailable")") != std::string::npos);

  audit::audit_log unwritable((dir.path / "missing-dir" / "c.log").string(), true);
  unwritable.key().set(secure_bytes(32, 1));
  refused = run_awaitable(unwritable.begin(req, anyone, "update", t));
  REQUIRE(refused);
  CHECK(refused->status == 503);
}

// A request without side effects (encrypt, sign, a read) does not wait for its request line;
// its answer waits for both lines. One that changes state is served only after its request line.
TEST_CASE("audit log: only a request with side effects waits for its request line; every answer waits for both") {
  keyed_log k;
  auto& [dir, path, log] = k;
  auto req = post("/v1/transit/encrypt/billing", R"({"plaintext":"aGVsbG8="})");
  caller anyone{caller_kind::anyone, "anyone", {}, {}, {}, {}, {}, {}};
  auto one = [&](bool side_effects) -> boost::asio::awaitable<std::pair<std::size_t, std::size_t>> {
    audit::ticket t;
    auto refused = co_await log.begin(req, anyone, "update", t, nullptr, side_effects);
    REQUIRE(!refused);
    auto before_serving = read_lines(path).size();
    response ok{200, R"({"data":{"ciphertext":"vault:v1:abc"}})"};
    auto answer = co_await log.finish(t, std::move(ok));
    CHECK(answer.status == 200);
    co_return std::pair{before_serving, read_lines(path).size()};
  };
  auto [pure_before, pure_after] = run_awaitable(one(false));
  CHECK(pure_before == 0);  // served before its request line was written
  CHECK(pure_after == 2);
  auto [changing_before, changing_after] = run_awaitable(one(true));
  CHECK(changing_before == 3);  // its request line was in the file before it was served
  CHECK(changing_after == 4);
  CHECK(verify_file(path).ok);
}

// Files this process writes may not grow while it lives: every write fails (EFBIG).
struct no_file_growth {
  rlimit saved{};
  void (*old_handler)(int) = std::signal(SIGXFSZ, SIG_IGN);
  no_file_growth() {
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    rlimit none = saved;
    none.rlim_cur = 0;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &none) == 0);
  }
  ~no_file_growth() {
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, old_handler);
  }
};

// The request line's write fails; the limit is lifted before the response line, which is
// written. The request line is lost, so the answer is withheld though the handler ran, and the
// response line records the 503, not the answer.
TEST_CASE("audit log: fail_closed withholds the answer when a request line written without waiting is lost") {
  keyed_log k;
  auto& [dir, path, log] = k;
  auto req = post("/v1/transit/sign/k");
  caller anyone{caller_kind::anyone, "anyone", {}, {}, {}, {}, {}, {}};
  audit::ticket t;
  std::optional<response> refused;
  {
    no_file_growth full;
    refused = run_awaitable(log.begin(req, anyone, "update", t, nullptr, false));  // runs the flush too
  }
  REQUIRE(!refused);  // not waited for
  CHECK(log.counters().failures == 1);
  auto answer = run_awaitable(log.finish(t, response{200, R"({"data":{"signature":"vault:v1:x"}})"}));
  CHECK(answer.status == 503);
  CHECK(answer.body.find("vault:v1:x") == std::string::npos);
  auto lines = read_lines(path);
  REQUIRE(lines.size() == 1);  // the response line
  auto line = json::parse(lines[0]);
  CHECK(line.at("response").at("status") == 503);
  CHECK(s(line.at("error")).find("response withheld") != std::string::npos);
  CHECK(lines[0].find("signature") == std::string::npos);
  CHECK(log.counters().lines == 1);
  CHECK(log.counters().refused == 1);
}

// A body that is JSON but not an object has no field names to say what in it is secret.
TEST_CASE("audit log: a request body that is not a JSON object is written as null") {
  keyed_log k;
  auto& [dir, path, log] = k;
  caller anyone{caller_kind::anyone, "anyone", {}, {}, {}, {}, {}, {}};
  for (std::string_view body : {R"("c2VjcmV0")", R"(["c2VjcmV0"])", "not json", "  \n"}) {
    CAPTURE(body);
    auto req = post("/v1/transit/encrypt/k", body);
    audit::ticket t;
    REQUIRE(!run_awaitable(log.begin(req, anyone, "update", t)));
    auto lines = read_lines(path);
    CHECK(lines.back().find("c2VjcmV0") == std::string::npos);
    CHECK(json::parse(lines.back()).at("request").at("data").is_null());
  }
  json::object parsed;  // the route's parse of a blank body
  audit::ticket t;
  auto blank = post("/v1/transit/encrypt/k", " ");
  REQUIRE(!run_awaitable(log.begin(blank, anyone, "update", t, &parsed)));
  CHECK(json::parse(read_lines(path).back()).at("request").at("data").is_null());
}

// Written straight from the value: the same JSON as Boost's serializer on everything that is not
// a secret, escapes and extreme numbers included.
TEST_CASE("redaction: text written from a value parses back to the same value") {
  auto key = test_key();
  auto v = json::parse(R"({"q\"uote":"a\"b\\c\n\u0001\u001f é","nested":{"deep":[1,-9223372036854775808,18446744073709551615,1.5e300,-0.0,true,false,null,[],{}]},"":""})");
  std::string text;
  audit::append_redacted(text, v, key);
  CHECK(json::parse(text) == v);
  std::string empty;
  audit::append_redacted(empty, json::value(json::object{}), key);
  CHECK(empty == "{}");
}

TEST_CASE("config: the audit section") {
  const std::string base = R"(
listen: { unix: { path: /run/b.sock } }
members:
  - { name: a, module: /m.so, slot: 0, pin: { value: "1" } }
)";
  CHECK(parse_config(base).audit.file.empty());
  auto c = parse_config(base + "audit: { file: /var/log/hsm-broker/audit.log }\n");
  CHECK(c.audit.file == "/var/log/hsm-broker/audit.log");
  CHECK(c.audit.fail_closed);
  CHECK(!parse_config(base + "audit: { file: /a.log, fail_closed: false }\n").audit.fail_closed);
  CHECK_THROWS_WITH_AS(parse_config(base + "audit: { fail_closed: true }\n"), doctest::Contains("audit"), config_error);
  CHECK_THROWS_WITH_AS(parse_config(base + "audit: { file: rel.log }\n"), doctest::Contains("audit.file"), config_error);
  CHECK_THROWS_AS(parse_config(base + "audit: { file: /a.log, sink: x }\n"), config_error);
}

// Writers of one event-loop turn share one flush: one lock and one write for all of them, the
// lines in the order they came and the chain unbroken; a writer of a later turn gets a flush of its own.
TEST_CASE("group commit: the lines of one turn go out in one write, in order, chained") {
  temp_dir dir;
  auto path = dir.path / "audit.log";
  audit::file_sink sink(path.string());
  audit::group_commit commit(sink);
  boost::asio::io_context io;
  int written = 0;
  for (int i = 0; i < 50; ++i)
    boost::asio::co_spawn(io, commit.write(R"({"n":)" + std::to_string(i) + "}"), [&](std::exception_ptr e, auto r) {
      REQUIRE_FALSE(e);
      CHECK(r.has_value());
      ++written;
    });
  io.run();
  CHECK(written == 50);
  CHECK(commit.flushes() == 1);
  (void)run_awaitable(commit.write(R"({"n":50})"));
  CHECK(commit.flushes() == 2);
  auto lines = read_lines(path);
  REQUIRE(lines.size() == 51);
  for (int i = 0; i < 51; ++i) CHECK(lines[i].starts_with(R"({"n":)" + std::to_string(i) + ","));
  CHECK(verify_file(path).ok);
}

// The lock taken by a flush is kept for the lease (no flock per flush), then released: another
// writer (the next broker generation) can take it once the lease has run out.
TEST_CASE("group commit: the file's lock is leased across flushes and released at the lease's end") {
  temp_dir dir;
  auto path = dir.path / "audit.log";
  audit::file_sink sink(path.string());
  audit::group_commit commit(sink);
  boost::asio::io_context io;
  bool written = false;
  boost::asio::co_spawn(io, commit.write(R"({"n":0})"), [&](std::exception_ptr e, auto r) {
    REQUIRE_FALSE(e);
    CHECK(r.has_value());
    written = true;
  });
  while (!written) io.run_one();
  CHECK(sink.locked());
  int other = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(other >= 0);
  CHECK(::flock(other, LOCK_EX | LOCK_NB) != 0);  // held by the lease
  io.run();                                        // the lease's timer
  CHECK_FALSE(sink.locked());
  CHECK(::flock(other, LOCK_EX | LOCK_NB) == 0);
  ::close(other);
}
