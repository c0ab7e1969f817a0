// Cross-broker claims on a key name (broker/keys/name_claims), on a fake member: another broker's
// live claim holds a change off, its release (by scope) or its age (ten minutes) lets it through,
// and a broker's own claims never hold itself off.
#include <doctest/doctest.h>

#include <optional>

#include "broker/keys/name_claims.h"
#include "tests/lib/fake_pool.h"

using namespace hsmb;
using namespace hsmb::test;
using namespace std::chrono_literals;

namespace {

// Two brokers' claim services over one member (each with its own instance token).
struct two_brokers {
  fake_pool p{1, [](config& c) { c.request_timeout = 250ms; }};  // a refused claim waits this long
  key_context ctx{p.io, p.pool(), replication_mode::broker, 1};
  copy_checks checks{ctx};
  key_directory directory{ctx, checks};
  name_claims first{ctx, directory};
  name_claims second{ctx, directory};
  two_brokers() {
    p.start();
    REQUIRE(p.run_until([&] { return p.all_serving(); }));
  }
  // co_spawn's completion needs a default-constructible result: an optional around the claim.
  using claimed = std::optional<broker_result<name_claim>>;
  claimed claim(name_claims& by, std::string name) {
    auto work = [](name_claims& c, std::string n) -> boost::asio::awaitable<claimed> { co_return co_await c.claim(n); };
    return p.await(work(by, std::move(name)));
  }
  std::size_t claim_records() {
    std::size_t n = 0;
    for (auto& r : p.token(0).records()) n += r.name.find("claim/k/") != std::string::npos;
    return n;
  }
};

}  // namespace

TEST_CASE("another broker's live claim holds a change off until the request deadline") {
  two_brokers b;
  auto held = b.claim(b.first, "k");
  REQUIRE(*held);
  CHECK(b.claim_records() == 1);
  auto started = std::chrono::steady_clock::now();
  auto refused = b.claim(b.second, "k");
  REQUIRE_FALSE(*refused);
  CHECK(refused->error().kind == error_kind::unavailable);
  CHECK(refused->error().message.find("another broker is changing key \"k\"") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - started >= b.p.cfg.request_timeout);
  CHECK(b.claim_records() == 1);  // the refused one took its record back
  // Out of scope, the claim is released: the other broker gets the name.
  held.reset();
  REQUIRE(b.p.run_until([&] { return b.claim_records() == 0; }));
  auto taken = b.claim(b.second, "k");
  CHECK(*taken);
}

TEST_CASE("a claim older than ten minutes belongs to a broker that died: another takes the name") {
  two_brokers b;
  auto held = b.claim(b.first, "k");  // never released: its broker "died"
  REQUIRE(*held);
  b.p.time->skip(9min);
  CHECK_FALSE(*b.claim(b.second, "k"));  // nine minutes: still live
  b.p.time->skip(2min);
  CHECK(*b.claim(b.second, "k"));
}

TEST_CASE("a broker's own claims never hold itself off (its changes are serialised by the admin lock)") {
  two_brokers b;
  auto one = b.claim(b.first, "k");
  REQUIRE(*one);
  auto started = std::chrono::steady_clock::now();
  auto again = b.claim(b.first, "k");  // the first's release still on its way
  CHECK(*again);
  CHECK(std::chrono::steady_clock::now() - started < b.p.cfg.request_timeout / 2);
  CHECK(*b.claim(b.first, "other"));  // other names are other claims
}
