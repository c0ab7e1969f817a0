// Cross-broker claims on a key name (broker/keys/name_claims), on a fake member: another broker's
// live claim holds a change off, its release (by scope) or its age (ten minutes) lets it through,
// and a broker's own claims never hold itself off.
#include <doctest/doctest.h>

#include <algorithm>
#include <optional>

#include "broker/keys/name_claims.h"
#include "broker/keys/worker_requests.h"
#include "broker/typed_call.h"
#include "tests/lib/fake_pool.h"

using namespace hsmb;
using namespace hsmb::test;
using namespace std::chrono_literals;

namespace {

// One broker's claim service on a pool.
struct claimant {
  key_context ctx;
  copy_checks checks{ctx};
  key_directory directory{ctx, checks};
  name_claims claims{ctx, directory};
  explicit claimant(fake_pool& p) : ctx(p.io, p.pool(), replication_mode::broker, 1) {}
};

// co_spawn's completion needs a default-constructible result: an optional around the claim.
using claimed = std::optional<broker_result<name_claim>>;

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

// Starts a claim; `out` holds its result once it ends.
void spawn_claim(fake_pool& p, name_claims& c, claimed& out) {
  auto work = [](name_claims& c) -> boost::asio::awaitable<claimed> { co_return co_await c.claim("k"); };
  boost::asio::co_spawn(p.io, work(c), [&out](std::exception_ptr e, claimed v) {
    if (e) std::rethrow_exception(e);
    if (v) out.emplace(std::move(*v));
  });
}

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

// SoftHSM2's file store, shared by two brokers' workers: a worker whose record creation overlaps
// another's takes the token's new generation as seen and never re-reads the other's record. A
// check on that worker let both brokers hold one name (CI, two brokers creating one key); A's put
// outlasts B's old 200 ms second look, so only a check by a process that never wrote catches it.
TEST_CASE("a claim committed while another broker's put was in flight still holds that broker off") {
  fake_pool pa{1, [](config& c) { c.request_timeout = 600ms; }};
  fake_pool pb{fake_pool::beside{pa}};
  pa.token(0).per_process_views(true);
  pa.start();
  pb.start();
  REQUIRE(pa.run_until([&] { return pa.all_serving() && pb.all_serving(); }));
  claimant a(pa), b(pb);
  pa.token(0).script(wire::op::put_metadata, fake_step::slow(300ms));  // A's put: a find now, its commit late
  claimed by_a, by_b;
  spawn_claim(pa, a.claims, by_a);
  REQUIRE(pa.run_until([&] { return pa.token(0).calls(wire::op::put_metadata) == 1; }));
  spawn_claim(pb, b.claims, by_b);  // B's put and checks all land inside A's put
  REQUIRE(pa.run_until([&] { return by_a && by_b; }));
  REQUIRE(*by_b);  // B claimed first
  REQUIRE_FALSE(*by_a);  // A saw B's claim, though its own worker missed it
  CHECK(by_a->error().message.find("another broker is changing key \"k\"") != std::string::npos);
}

// The same token model: a broker's own worker that missed another broker's record re-reads the
// token once the broker has checked a claim, and again once it has released it (the check's
// worker writes, which moves the counter).
TEST_CASE("after a claim is taken, and after it is released, the broker's own worker sees records it had missed") {
  fake_pool pa{1};
  fake_pool pb{fake_pool::beside{pa}};
  pa.token(0).per_process_views(true);
  pa.start();
  pb.start();
  REQUIRE(pa.run_until([&] { return pa.all_serving() && pb.all_serving(); }));
  claimant a(pa);
  auto put = [](member& m, std::string name) -> boost::asio::awaitable<bool> {
    auto r = claim_request(name, 1);
    co_return (co_await typed_call<wire::op::put_metadata>(m, r, std::chrono::milliseconds(1000))).has_value();
  };
  auto listed = [&](const std::string& name) {
    auto records = pa.await(a.directory.list_records(pa.at(0)));
    REQUIRE(records);
    return std::any_of(records->begin(), records->end(), [&](auto& r) { return r.name == name; });
  };
  pa.token(0).script(wire::op::put_metadata, fake_step::slow(100ms));
  std::optional<bool> slow;
  boost::asio::co_spawn(pa.io, put(pa.at(0), "a-record"), [&](std::exception_ptr, bool ok) { slow = ok; });
  REQUIRE(pa.run_until([&] { return pa.token(0).calls(wire::op::put_metadata) == 1; }));
  REQUIRE(pb.await(put(pb.at(0), "b-record")));  // lands inside A's put
  REQUIRE(pa.run_until([&] { return slow.has_value(); }));
  REQUIRE_FALSE(listed("b-record"));  // A's worker absorbed B's create
  auto held = pa.await([](name_claims& c) -> boost::asio::awaitable<claimed> { co_return co_await c.claim("k"); }(a.claims));
  REQUIRE(*held);
  CHECK(listed("b-record"));
  // The change's own writes hide B's next record again; its claim's release shows it.
  pa.token(0).script(wire::op::put_metadata, fake_step::slow(100ms));
  slow.reset();
  boost::asio::co_spawn(pa.io, put(pa.at(0), "a-record-2"), [&](std::exception_ptr, bool ok) { slow = ok; });
  REQUIRE(pa.run_until([&] { return pa.token(0).calls(wire::op::put_metadata) == 5; }));  // after the claim and the touch
  REQUIRE(pb.await(put(pb.at(0), "b-record-2")));
  REQUIRE(pa.run_until([&] { return slow.has_value(); }));
  REQUIRE_FALSE(listed("b-record-2"));
  held.reset();
  REQUIRE(pa.run_until([&] {
    for (auto& r : pa.token(0).records()) if (r.name.find("claim/k/") != std::string::npos) return false;
    return true;
  }));
  CHECK(listed("b-record-2"));
}
