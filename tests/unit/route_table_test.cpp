// The route table (api/transit/route_table.h, routes::table()): every route described, the
// matcher's patterns, parameters, 404 and 405, and each Transit route's capability as Vault has it.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <fstream>
#include <iterator>

#include <boost/json.hpp>

#include "api/transit/openapi.h"
#include "api/transit/route_table.h"
#include "api/transit/routes.h"
#include "broker/config.h"

using namespace hsmb;
using namespace hsmb::api;

namespace {

route_match match(std::string_view method, std::string_view target) {
  return routes::table().match(method, split_target(target));
}

// The operation that takes the request, "404" or "405".
std::string route_of(std::string_view method, std::string_view target) {
  auto m = match(method, target);
  if (m.outcome == route_match::not_found) return "404";
  if (m.outcome == route_match::method_not_allowed) return "405";
  return std::string(routes::table().routes()[m.index].operation);
}

const route_spec& spec_of(std::string_view method, std::string_view target) {
  auto m = match(method, target);
  REQUIRE(m.outcome == route_match::found);
  return routes::table().routes()[m.index];
}

}  // namespace

TEST_CASE("every route has methods, a pattern and a capability; no two take one method on one pattern") {
  std::set<std::pair<std::string_view, method_set>> taken;
  std::set<std::string_view> operations;
  for (auto& r : routes::table().routes()) {
    INFO(method_names(r.methods) << " " << r.pattern << " " << to_string(r.needs));
    CHECK(to_string(r.needs) != "?");
    CHECK_FALSE(method_names(r.methods).empty());
    CHECK(r.pattern.starts_with('/'));
    CHECK(operations.insert(r.operation).second);
    for (method_set bit = 1; bit != 0; bit <<= 1)
      if (r.methods & bit) CHECK(taken.insert({r.pattern, bit}).second);
    // The contract (design "Callers"): broker/* GET read, POST sudo.
    if (r.pattern.starts_with("/v1/broker/"))
      CHECK((r.admin && r.needs == (r.methods == method_bit("POST") ? vault_capability::sudo : vault_capability::read)));
  }
  CHECK(routes::table().routes().size() == 29);
}

// The audit trail runs a route with changes_state false before its request line is written
// (README "Audit"): a route that creates, changes or deletes anything must say so.
TEST_CASE("exactly the routes that change keys or the broker's state are marked changes_state") {
  std::set<std::string_view> changing;
  for (auto& r : routes::table().routes())
    if (r.changes_state) changing.insert(r.operation);
  CHECK(changing == std::set<std::string_view>{"sync_repair", "delete_key", "create_key", "rotate_key",
                                               "set_certificate", "configure_key"});
  for (auto& r : routes::table().routes())  // nothing reached by GET changes anything
    if (r.changes_state) CHECK_FALSE((r.methods & method_bit("GET")));
}

TEST_CASE("targets split on /, empty segments dropped, the query apart") {
  auto t = split_target("//v1/transit//keys/?list=true&x");
  CHECK(t.segments == std::vector<std::string_view>{"v1", "transit", "keys"});
  CHECK(t.query == "list=true&x");
  CHECK(query_has(t.query, "list=true"));
  CHECK_FALSE(query_has("list=truex&a", "list=true"));
  CHECK(split_target("").segments.empty());
  CHECK(split_target("/?a/b").segments.empty());
}

TEST_CASE("patterns: literals, named segments, optional trailing ones, a rest") {
  path_pattern sign("/v1/transit/sign/:name/:hash_algorithm?");
  path_params p;
  CHECK(sign.match(split_path("/v1/transit/sign/k/sha2-512"), &p));
  CHECK(p.get("name") == "k");
  CHECK(p.get("hash_algorithm") == "sha2-512");
  path_params q;
  CHECK(sign.match(split_path("/v1/transit/sign/k/"), &q));
  CHECK(q.get("name") == "k");
  CHECK(q.get("hash_algorithm").empty());
  CHECK_FALSE(sign.match(split_path("/v1/transit/sign")));
  CHECK_FALSE(sign.match(split_path("/v1/transit/sign/k/sha2-512/x")));
  CHECK_FALSE(sign.match(split_path("/v1/transit/SIGN/k")));

  path_pattern rest("/v1/transit/encrypt/*");
  CHECK(rest.match(split_path("/v1/transit/encrypt")));
  CHECK(rest.match(split_path("/v1/transit/encrypt/a/b/c")));
  CHECK_FALSE(rest.match(split_path("/v1/transit/decrypt/a")));

  CHECK_THROWS_AS(path_pattern("v1/x"), std::invalid_argument);
  CHECK_THROWS_AS(path_pattern("/a/*/b"), std::invalid_argument);
  CHECK_THROWS_AS(path_pattern("/a/:x?/:y"), std::invalid_argument);
  CHECK_THROWS_AS(path_pattern("/a/:x?/b"), std::invalid_argument);
  CHECK_THROWS_AS(path_pattern("/a/b?"), std::invalid_argument);
}

TEST_CASE("matching: the route and its parameters") {
  auto m = match("POST", "/v1/transit/datakey/wrapped/k1?x=1");
  REQUIRE(m.outcome == route_match::found);
  CHECK(m.params.get("type") == "wrapped");
  CHECK(m.params.get("name") == "k1");
  CHECK(m.params.get("other").empty());
  auto r = match("PUT", "/v1/transit/random/platform/16");
  REQUIRE(r.outcome == route_match::found);
  CHECK(r.params.get("source") == "platform");
  CHECK(r.params.get("bytes") == "16");
  CHECK(route_of("POST", "//v1//transit/keys//k//rotate/") == "rotate_key");
  CHECK(route_of("POST", "/v1/transit/hmac/k/sha2-224") == "hmac");
  CHECK(route_of("POST", "/v1/transit/verify/k") == "verify");
  CHECK(route_of("POST", "/v1/broker/keys/sync") == "sync_repair");
  CHECK(route_of("GET", "/v1/broker/keys/sync") == "sync_report");
  CHECK(route_of("HEAD", "/v1/sys/health") == "health");
  CHECK(route_of("GET", "/metrics/") == "metrics");
  CHECK(route_of("GET", "/v1/transit/keys/k?list=true") == "read_key");
  CHECK(route_of("LIST", "/v1/transit/keys/") == "list_keys");
  CHECK(route_of("GET", "/v1/transit/keys?a=b&list=true") == "list_keys");
}

TEST_CASE("404 and 405 as the broker has always answered them") {
  // Unknown paths and unknown Transit operations are 404 whatever the method.
  for (auto method : {"GET", "POST", "PATCH", "LIST"}) {
    INFO(method);
    CHECK(route_of(method, "/") == "404");
    CHECK(route_of(method, "/v1") == "404");
    CHECK(route_of(method, "/v1/transit") == "404");
    CHECK(route_of(method, "/v1/transit/nothing-here") == "404");
    CHECK(route_of(method, "/v1/transit/export/k") == "404");
    CHECK(route_of(method, "/v1/transit/keys/k/rotate/x") == "404");
    CHECK(route_of(method, "/v1/sys/health/x") == "404");
    CHECK(route_of(method, "/v1/broker/keys") == "404");
    CHECK(route_of(method, "/metrics/x") == "404");
  }
  // A known path with another method is 405; on a write operation at any depth.
  CHECK(route_of("POST", "/metrics") == "405");
  CHECK(route_of("POST", "/v1/sys/health") == "405");
  CHECK(route_of("DELETE", "/v1/broker/keys/sync") == "405");
  CHECK(route_of("POST", "/v1/broker/members") == "405");
  CHECK(route_of("GET", "/v1/transit/keys") == "405");
  CHECK(route_of("POST", "/v1/transit/keys") == "405");
  CHECK(route_of("GET", "/v1/transit/keys?list=false") == "405");
  CHECK(route_of("HEAD", "/v1/transit/keys?list=true") == "405");
  CHECK(route_of("LIST", "/v1/transit/keys/k") == "405");
  CHECK(route_of("get", "/v1/transit/keys/k") == "405");
  CHECK(route_of("GET", "/v1/transit/keys/k/rotate") == "405");
  CHECK(route_of("GET", "/v1/transit/keys/k/anything") == "405");
  CHECK(route_of("DELETE", "/v1/transit/encrypt/k") == "405");
  CHECK(route_of("GET", "/v1/transit/encrypt") == "405");
  CHECK(route_of("GET", "/v1/transit/sign/k/a/b/c") == "405");
  // ...but the right method on a shape the operation does not take is 404.
  CHECK(route_of("POST", "/v1/transit/keys/k/anything") == "404");
  CHECK(route_of("POST", "/v1/transit/encrypt") == "404");
  CHECK(route_of("POST", "/v1/transit/encrypt/k/sha2-256") == "404");
  CHECK(route_of("POST", "/v1/transit/datakey/plaintext") == "404");
  CHECK(route_of("POST", "/v1/transit/random/a/b/c") == "404");
}

// The capability each route needs, as the design's "Callers" contract gives it: keys/:name POST
// create, GET read, DELETE delete; keys LIST list; rotate, config and every operation update.
// (Vault itself asks update for a key's POST, having no existence check there; the contract asks
// create, so that a policy can let a caller make keys without letting it reconfigure them.)
TEST_CASE("each Transit route needs the capability the contract gives it") {
  struct pin {
    const char* method;
    const char* target;
    vault_capability needs;
  };
  const pin pins[] = {
      {"LIST", "/v1/transit/keys", vault_capability::list},
      {"GET", "/v1/transit/keys?list=true", vault_capability::list},
      {"GET", "/v1/transit/keys/k", vault_capability::read},
      {"POST", "/v1/transit/keys/k", vault_capability::create},
      {"PUT", "/v1/transit/keys/k", vault_capability::create},
      {"DELETE", "/v1/transit/keys/k", vault_capability::del},
      {"POST", "/v1/transit/keys/k/rotate", vault_capability::update},
      {"POST", "/v1/transit/keys/k/config", vault_capability::update},
      {"POST", "/v1/transit/encrypt/k", vault_capability::update},
      {"POST", "/v1/transit/decrypt/k", vault_capability::update},
      {"POST", "/v1/transit/rewrap/k", vault_capability::update},
      {"POST", "/v1/transit/sign/k", vault_capability::update},
      {"POST", "/v1/transit/sign/k/sha2-384", vault_capability::update},
      {"POST", "/v1/transit/verify/k", vault_capability::update},
      {"POST", "/v1/transit/verify/k/sha2-384", vault_capability::update},
      {"POST", "/v1/transit/hmac/k", vault_capability::update},
      {"POST", "/v1/transit/hmac/k/sha2-512", vault_capability::update},
      {"POST", "/v1/transit/random", vault_capability::update},
      {"POST", "/v1/transit/random/16", vault_capability::update},
      {"POST", "/v1/transit/random/platform/16", vault_capability::update},
      {"POST", "/v1/transit/datakey/plaintext/k", vault_capability::update},
      {"POST", "/v1/transit/datakey/wrapped/k", vault_capability::update},
      {"POST", "/v1/transit/hash", vault_capability::update},
      {"GET", "/v1/transit/keys/k/csr", vault_capability::read},
      {"POST", "/v1/transit/keys/k/csr", vault_capability::update},
      {"POST", "/v1/transit/keys/k/set-certificate", vault_capability::update},
      {"POST", "/v1/transit/hash/sha3-256", vault_capability::update},
      {"GET", "/v1/sys/health", vault_capability::read},
  };
  std::set<std::string_view> pinned;
  for (auto& p : pins) {
    INFO(p.method << " " << p.target);
    auto& r = spec_of(p.method, p.target);
    CHECK(to_string(r.needs) == to_string(p.needs));
    CHECK_FALSE(r.admin);
    pinned.insert(r.operation);
  }
  for (auto& r : routes::table().routes())
    if (r.pattern.starts_with("/v1/transit/")) CHECK_MESSAGE(pinned.count(r.operation), r.operation << " has no pin");
  CHECK(spec_of("GET", "/v1/sys/health").unauthenticated);
  CHECK(spec_of("HEAD", "/v1/sys/health").unauthenticated);
  CHECK_FALSE(spec_of("POST", "/v1/transit/encrypt/k").unauthenticated);
  CHECK(spec_of("GET", "/v1/broker/members").needs == vault_capability::read);
  CHECK(spec_of("POST", "/v1/broker/keys/sync").needs == vault_capability::sudo);
  CHECK(spec_of("GET", "/metrics").admin);
  CHECK(spec_of("GET", "/v1/sys/seal-status").unauthenticated);
  CHECK(spec_of("GET", "/v1/sys/init").unauthenticated);
  CHECK_FALSE(spec_of("GET", "/v1/sys/mounts").unauthenticated);
  CHECK(spec_of("GET", "/v1/sys/mounts").needs == vault_capability::read);
  CHECK(spec_of("GET", "/v1/auth/token/lookup-self").needs == vault_capability::read);
}

// What lives in routes::handle around the table: a write's body read before an unknown Transit
// path is judged, never on /v1/transit/keys (405) nor on the broker's routes. No member, no HSM.
TEST_CASE("routes::handle keeps the order of body errors, 404 and 405") {
  namespace asio = boost::asio;
  asio::io_context io;
  config cfg;
  cfg.request_timeout = std::chrono::milliseconds(200);
  member_pool pool(io, cfg, "/nonexistent/hsm-worker");
  key_service keys(io, pool, cfg.replication, cfg.min_copies);
  keys.attach();
  routes router(keys, pool);
  auto answer = [&](std::string_view method, std::string_view target, std::string_view body) {
    request req;
    req.method = method;
    req.target = target;
    req.body = body;
    std::optional<response> out;
    asio::co_spawn(io, router.handle(req), [&](std::exception_ptr e, response r) {
      REQUIRE_FALSE(e);
      out = std::move(r);
    });
    io.restart();
    while (!out && io.run_one() > 0) {
    }
    REQUIRE(out);
    return std::make_pair(out->status, out->body);
  };
  auto bad_body = answer("POST", "/v1/transit/nothing-here", "[1]");
  CHECK(bad_body.first == 400);
  CHECK(bad_body.second.find("failed to parse JSON input") != std::string::npos);
  CHECK(answer("PUT", "/v1/transit/keys/k/a/b", "{").first == 400);
  CHECK(answer("POST", "/v1/transit/nothing-here", "{}") ==
        std::make_pair(404u, std::string(R"({"errors":["unsupported path /v1/transit/nothing-here"]})")));
  CHECK(answer("POST", "/v1/transit/keys", "[1]") ==
        std::make_pair(405u, std::string(R"({"errors":["method POST not allowed on /v1/transit/keys"]})")));
  CHECK(answer("GET", "/v1/transit/encrypt/k?x", "[1]").first == 405);
  CHECK(answer("POST", "/v1/other/thing", "[1]").first == 404);
  CHECK(answer("POST", "/v1/broker/keys/sync", "[1]").first == 200);
  CHECK(answer("POST", "/v1/transit/datakey/neither/k", "{}") ==
        std::make_pair(400u, std::string(R"({"errors":["datakey type must be plaintext or wrapped"]})")));
  CHECK(answer("POST", "/v1/transit/random/x", "{}") ==
        std::make_pair(400u, std::string(R"j({"errors":["unsupported entropy source \"x\": use platform, seal or all (each is the HSMs' generator here)"]})j")));
  CHECK(answer("POST", "/v1/transit/random/hex/4", "{}").first == 400);  // Vault reads hex as a source, and refuses it
  CHECK(answer("POST", "/v1/transit/random/all/x", "{}") ==
        std::make_pair(400u, std::string(R"({"errors":["the number of bytes in the path must be a whole number"]})")));
  CHECK(answer("GET", "/v1/sys/health", "").first == 503);  // no member serves
}

// docs/openapi.json is the generated document, checked in: regenerate it when a route changes.
TEST_CASE("docs/openapi.json is the document generated from the route table, and names every route") {
  auto doc = openapi_document(routes::table());
  std::ifstream in(std::string(HSMB_SOURCE_DIR) + "/docs/openapi.json");
  std::string checked_in((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (doc != checked_in) std::ofstream("openapi.json") << doc;
  CHECK_MESSAGE(doc == checked_in, "docs/openapi.json is stale: cp build/tests/openapi.json docs/openapi.json (written by this test)");
  auto parsed = boost::json::parse(doc).as_object();
  auto& paths = parsed.at("paths").as_object();
  for (auto& r : routes::table().routes()) {
    if (!r.pattern.starts_with("/v1/")) continue;
    bool found = false;
    for (auto& [path, item] : paths)
      for (auto& [method, op] : item.as_object())
        if (method != "parameters" && op.at("operationId").as_string().starts_with(r.operation)) found = true;
    CHECK_MESSAGE(found, r.operation << " (" << r.pattern << ") is not in the OpenAPI document");
  }
  CHECK(paths.contains("/transit/sign/{name}"));
  CHECK(paths.contains("/transit/sign/{name}/{hash_algorithm}"));
  CHECK(paths.at("/transit/keys").at("get").at("x-vault-capability") == "list");
}
