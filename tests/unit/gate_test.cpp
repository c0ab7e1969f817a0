// Enforcement in routes::handle (api/auth/gate): the X-Vault-Request guard first, then 403 after
// matching and before the body is read; unauthenticated routes stay open; no auth: anyone.
// No member, no HSM.
#include <doctest/doctest.h>

#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "api/auth/authenticator.h"
#include "api/transit/routes.h"
#include "broker/config.h"

using namespace hsmb;
using namespace hsmb::api;

namespace {

struct rig {
  boost::asio::io_context io;
  config cfg;
  member_pool pool;
  key_service keys;
  routes router;
  explicit rig(std::optional<auth_config> auth)
      : cfg(short_timeouts()), pool(io, cfg, "/nonexistent/hsm-worker"), keys(io, pool, cfg.replication, cfg.min_copies),
        router(keys, pool, 1000, gate(std::move(auth))) {
    keys.attach();
  }
  static config short_timeouts() {
    config c;
    c.request_timeout = std::chrono::milliseconds(200);
    return c;
  }
  response answer(request req) {
    std::optional<response> out;
    boost::asio::co_spawn(io, router.handle(req), [&](std::exception_ptr e, response r) {
      REQUIRE_FALSE(e);
      out = std::move(r);
    });
    io.restart();
    while (!out && io.run_one() > 0) {
    }
    REQUIRE(out);
    return *out;
  }
};

request make(std::string_view method, std::string_view target, std::string_view body = "", std::string_view token = "") {
  request r;
  r.method = method;
  r.target = target;
  r.body = body;
  r.vault_token = token;
  return r;
}

auth_config billing_only(bool require_header = false) {
  auth_config a;
  a.require_request_header = require_header;
  token_binding t;
  t.name = "billing";
  t.sha256 = sha256_hex("tok");
  t.policies = {"billing"};
  a.tokens.push_back(t);
  a.policies["billing"] = {{"transit/datakey/*", acl_bits::update}};
  return a;
}

}  // namespace

TEST_CASE("with auth: 403 after matching, before the body; the allowed reach the handler") {
  rig r(billing_only());
  auto denied = r.answer(make("POST", "/v1/transit/encrypt/k", "[1]"));
  CHECK(denied.status == 403);
  CHECK(denied.body == R"({"errors":["permission denied"]})");
  CHECK(r.answer(make("POST", "/v1/transit/encrypt/k", "[1]", "tok")).status == 403);  // not its path
  CHECK(r.answer(make("POST", "/v1/transit/datakey/neither/k", "{}", "tok")).status == 400);  // the handler's answer
  CHECK(r.answer(make("POST", "/v1/transit/datakey/neither/k", "{}", "other")).status == 403);
  CHECK(r.answer(make("GET", "/v1/sys/health")).status == 503);  // open, and no member serves
  CHECK(r.answer(make("GET", "/v1/sys/seal-status", "", "unknown")).status == 200);
  CHECK(r.answer(make("GET", "/v1/auth/token/lookup-self", "", "tok")).status == 200);
  CHECK(r.answer(make("GET", "/v1/auth/token/lookup-self")).status == 403);
  CHECK(r.answer(make("POST", "/v1/transit/nothing", "{}")).status == 404);  // no route: as before
}

TEST_CASE("require_request_header: 412 before anything else") {
  rig r(billing_only(true));
  CHECK(r.answer(make("GET", "/v1/sys/health")).status == 412);
  CHECK(r.answer(make("POST", "/v1/transit/datakey/neither/k", "{}", "tok")).status == 412);
  auto with = make("POST", "/v1/transit/datakey/neither/k", "{}", "tok");
  with.vault_request = "true";
  CHECK(r.answer(with).status == 400);
}

TEST_CASE("without auth: anyone may do everything; lookup-self says so") {
  rig r(std::nullopt);
  CHECK(r.answer(make("POST", "/v1/transit/datakey/neither/k", "{}", "whatever")).status == 400);
  auto self = r.answer(make("GET", "/v1/auth/token/lookup-self"));
  CHECK(self.status == 200);
  CHECK(self.body.find(R"("display_name":"anyone")") != std::string::npos);
  CHECK(self.body.find(R"("kind":"anyone")") != std::string::npos);
}

TEST_CASE("a binding's rate: a token bucket per caller, 429 once the burst is spent") {
  auto cfg = billing_only();
  cfg.tokens[0].rate = rate_limit{1, 2};
  rig r(std::move(cfg));
  auto ask = [&] { return r.answer(make("POST", "/v1/transit/datakey/neither/k", "{}", "tok")); };
  CHECK(ask().status == 400);
  CHECK(ask().status == 400);
  auto limited = ask();
  CHECK(limited.status == 429);
  CHECK(limited.body.find("retry after 1 s") != std::string::npos);
  CHECK(limited.retry_after == 1);
  CHECK(r.answer(make("GET", "/v1/sys/health")).status == 503);  // open routes are not counted
}
