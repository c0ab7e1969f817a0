// The body of every Transit route, and the routes themselves: the broker's real router
// (api/transit/routes.cpp) with its JSON codec and key_service, in a broker with no member, so
// everything that runs before an HSM would be asked runs for real (JSON parsing, field and
// option validation, batches, key names, versions, hash and marshaling options). A bad input is
// a 4xx with a Vault error body; a 500 ("a broker bug") or a crash is a finding.
//
// Input: byte 0 picks the route (method and path) from the table below, or (past its end) the
// method from a short list and the path from the input, up to a newline; the rest is the body.
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include "api/transit/route_table.h"
#include "api/transit/routes.h"
#include "broker/config.h"
#include "broker/key_service.h"
#include "broker/member_pool.h"
#include "tests/fuzz/fuzz_support.h"

using namespace hsmb;
namespace asio = boost::asio;

namespace {

struct route {
  std::string_view method, target;
};

constexpr route table[] = {
    {"POST", "/v1/transit/keys/k"},
    {"PUT", "/v1/transit/keys/k"},
    {"GET", "/v1/transit/keys/k"},
    {"DELETE", "/v1/transit/keys/k"},
    {"LIST", "/v1/transit/keys"},
    {"GET", "/v1/transit/keys?list=true"},
    {"POST", "/v1/transit/keys/k/rotate"},
    {"POST", "/v1/transit/keys/k/config"},
    {"POST", "/v1/transit/encrypt/k"},
    {"POST", "/v1/transit/decrypt/k"},
    {"POST", "/v1/transit/rewrap/k"},
    {"POST", "/v1/transit/sign/k"},
    {"POST", "/v1/transit/sign/k/sha2-512"},
    {"POST", "/v1/transit/verify/k"},
    {"POST", "/v1/transit/verify/k/sha2-384"},
    {"POST", "/v1/transit/hmac/k"},
    {"POST", "/v1/transit/hmac/k/sha2-224"},
    {"POST", "/v1/transit/random"},
    {"POST", "/v1/transit/random/64"},
    {"POST", "/v1/transit/random/platform/16"},
    {"POST", "/v1/transit/random/hex"},
    {"POST", "/v1/transit/datakey/plaintext/k"},
    {"POST", "/v1/transit/datakey/wrapped/k"},
    {"GET", "/v1/sys/health"},
    {"HEAD", "/v1/sys/health"},
    {"GET", "/v1/broker/members"},
    {"GET", "/v1/broker/keys/sync"},
    {"GET", "/metrics"},
};
constexpr std::size_t routes_in_table = sizeof table / sizeof table[0];
constexpr std::string_view methods[] = {"POST", "PUT", "GET", "LIST", "DELETE", "HEAD", "PATCH"};

struct broker {
  asio::io_context io;
  config cfg;
  std::unique_ptr<member_pool> pool;
  std::unique_ptr<key_service> keys;
  std::unique_ptr<api::routes> router;
  broker() {
    cfg.request_timeout = std::chrono::milliseconds(200);  // bounds any wait for members
    cfg.call_timeout = std::chrono::milliseconds(100);
    pool = std::make_unique<member_pool>(io, cfg, "/nonexistent/hsm-worker");
    keys = std::make_unique<key_service>(io, *pool, cfg.replication, cfg.min_copies);
    keys->attach();
    router = std::make_unique<api::routes>(*keys, *pool);
    pool->run();
  }
};

// The router drops empty segments ("//v1/sys/health" is health), so the harness judges by segments too.
bool is_health(std::string_view target) {
  auto s = api::split_target(target).segments;
  return s.size() == 3 && s[0] == "v1" && s[1] == "sys" && s[2] == "health";
}

void check_answer(const api::response& r, bool health) {
  static constexpr unsigned allowed[] = {200, 204, 400, 403, 404, 405, 413, 429, 503};
  FUZZ_CHECK(std::find(std::begin(allowed), std::end(allowed), r.status) != std::end(allowed));  // 500: a bug
  if (r.content_type != "application/json" || r.status == 204) return;
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  FUZZ_CHECK(!ec && v.is_object());
  auto& o = v.as_object();
  if (auto* errors = o.if_contains("errors")) {
    FUZZ_CHECK(errors->is_array() && !errors->as_array().empty());
    for (auto& e : errors->as_array()) FUZZ_CHECK(e.is_string());
  } else {
    // Batches answer their items under data; health answers its fields with 503 when no member serves.
    FUZZ_CHECK(r.status < 400 || o.contains("data") || (health && o.contains("initialized")));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static broker b;
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  api::request req;
  std::string target;
  if (data[0] < routes_in_table) {
    req.method = table[data[0]].method;
    req.target = table[data[0]].target;
  } else {
    req.method = methods[data[0] % std::size(methods)];
    auto nl = rest.find('\n');
    if (nl == std::string_view::npos) return 0;
    target = std::string(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
    req.target = target;
  }
  req.body = rest;
  std::optional<api::response> answer;
  asio::co_spawn(b.io, b.router->handle(req), [&](std::exception_ptr e, api::response r) {
    if (e) std::rethrow_exception(e);  // the session would answer 500: a finding here
    answer = std::move(r);
  });
  b.io.restart();
  while (!answer && b.io.run_one() > 0) {
  }
  FUZZ_CHECK(answer);
  check_answer(*answer, is_health(req.target));
  return 0;
}
