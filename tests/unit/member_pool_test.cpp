// The choice among members on fake workers: hedging, failover order, caller errors, and the
// reconnect-all-then-retry-once rule when every member failed.
#include <doctest/doctest.h>

#include "hsm_backends/pkcs11/p11.h"
#include "hsm_backends/wire/messages.h"
#include "tests/lib/fake_pool.h"

using namespace hsmb;
using namespace hsmb::test;
using namespace std::chrono_literals;

namespace {

broker_result<bytes> execute(fake_pool& p, repeatable r = repeatable::no) {
  bytes payload;
  wire::encode_cipher(payload, "hsmb/k/v1", as_bytes("plaintext"), {});
  return p.await(p.pool().execute(wire::op::encrypt, payload, [](const member&) { return true; }, r));
}

// The fake answers ops it does not model with its label.
std::string answered_by(const broker_result<bytes>& r) {
  REQUIRE(r);
  auto label = wire::decode_blob(*r);
  REQUIRE(label);
  return std::string(as_chars(*label));
}

std::size_t index_of(const std::string& name) { return std::stoul(name.substr(3)); }

// The member the router picks first: with the dice fixed, the same every time while the members
// look alike (few latency samples, nothing in flight).
struct two_members {
  fake_pool p{2};
  std::size_t first = 0, second = 0;
  two_members() {
    p.start();
    REQUIRE(p.run_until([&] { return p.all_serving(); }));
    first = index_of(answered_by(execute(p)));
    second = 1 - first;
  }
};

}  // namespace

TEST_CASE("hedging: a slow first member is hedged to the second, and the first answer wins") {
  two_members t;
  auto& slow = t.p.at(t.first);
  std::vector<member_state> seen;
  slow.on_state_change([&] { seen.push_back(slow.state()); });
  t.p.token(t.first).script(wire::op::encrypt, fake_step::hang());
  auto sent = std::chrono::steady_clock::now();
  auto r = execute(t.p, repeatable::yes);
  CHECK(answered_by(r) == t.p.at(t.second).name());
  CHECK(std::chrono::steady_clock::now() - sent < t.p.cfg.call_timeout);  // not the hung call's deadline
  CHECK(slow.snapshot().hedges == 1);
  CHECK(std::find(seen.begin(), seen.end(), member_state::suspect) != seen.end());  // avoided until it answers
  CHECK(t.p.at(t.second).snapshot().hedges == 0);
}

TEST_CASE("operations not safe to repeat are not hedged: the slow member's answer is awaited") {
  two_members t;
  t.p.token(t.first).script(wire::op::encrypt, fake_step::slow(60ms));  // three hedge delays
  auto calls_before = t.p.token(t.second).calls(wire::op::encrypt);
  auto r = execute(t.p, repeatable::no);
  CHECK(answered_by(r) == t.p.at(t.first).name());
  CHECK(t.p.token(t.second).calls(wire::op::encrypt) == calls_before);
  CHECK(t.p.at(t.first).snapshot().hedges == 0);
}

TEST_CASE("a device error fails over to the next member, and the failed one gets a fresh worker") {
  two_members t;
  t.p.token(t.first).script(wire::op::encrypt, fake_step::device_error());
  auto r = execute(t.p);
  CHECK(answered_by(r) == t.p.at(t.second).name());
  CHECK(t.p.at(t.first).snapshot().failovers == 1);
  REQUIRE(t.p.run_until([&] { return t.p.token(t.first).workers_started() == 2 && t.p.all_serving(); }));
}

TEST_CASE("a caller error is answered at once: no failover, no new worker") {
  two_members t;
  t.p.token(t.first).script(wire::op::encrypt, fake_step::fail(CKR_ENCRYPTED_DATA_INVALID, "tag mismatch"));
  auto calls_before = t.p.token(t.second).calls(wire::op::encrypt);
  auto r = execute(t.p, repeatable::yes);
  REQUIRE(!r);
  CHECK(r.error().kind == error_kind::invalid_input);
  CHECK(r.error().origin == error_origin::caller);
  CHECK(t.p.token(t.second).calls(wire::op::encrypt) == calls_before);
  CHECK(t.p.at(t.first).snapshot().failovers == 0);
  t.p.run_for(20ms);
  CHECK(t.p.token(t.first).workers_started() == 1);
  CHECK(t.p.at(t.first).state() == member_state::serving);
}

TEST_CASE("members that are not serving are tried only after every serving one") {
  fake_pool p(3, [](config& c) { c.probe_interval = 10s; });  // no probe makes the suspect serve meanwhile
  p.start();
  REQUIRE(p.run_until([&] { return p.all_serving(); }));
  p.at(2).note_hedge();  // suspect: a fallback now
  p.token(0).script(wire::op::encrypt, fake_step::fail(CKR_FUNCTION_CANCELED, "busy"));
  p.token(1).script(wire::op::encrypt, fake_step::fail(CKR_FUNCTION_CANCELED, "busy"));
  auto r = execute(p);
  CHECK(answered_by(r) == "hsm2");
  CHECK(p.token(0).calls(wire::op::encrypt) == 1);
  CHECK(p.token(1).calls(wire::op::encrypt) == 1);
}

TEST_CASE("every member turning a request away makes it an overload, not an outage") {
  two_members t;
  t.p.token(0).script(wire::op::encrypt, fake_step::fail(CKR_FUNCTION_CANCELED, "busy"));
  t.p.token(1).script(wire::op::encrypt, fake_step::fail(CKR_FUNCTION_CANCELED, "busy"));
  auto r = execute(t.p);
  REQUIRE(!r);
  CHECK(r.error().kind == error_kind::overloaded);
}

TEST_CASE("when every member failed, they are reconnected and the request is tried once more") {
  two_members t;
  t.p.token(0).script(wire::op::encrypt, fake_step::device_error());
  t.p.token(1).script(wire::op::encrypt, fake_step::device_error());
  auto r = execute(t.p);
  CHECK(r);
  CHECK(t.p.run_until([&] { return t.p.token(0).workers_started() == 2 && t.p.token(1).workers_started() == 2; }));
  CHECK(t.p.token(t.first).calls(wire::op::encrypt) + t.p.token(t.second).calls(wire::op::encrypt) == 4);
}

TEST_CASE("a down member is retried at once when every member failed, at most once a probe interval") {
  fake_pool p(2, [](config& c) { c.probe_interval = 10s; });  // its own retries are a second away at least
  p.token(0).script(wire::op::hello, fake_step::device_error());
  p.start();
  REQUIRE(p.run_until([&] { return p.at(0).settled() && p.at(1).state() == member_state::serving; }));
  REQUIRE(p.at(0).state() == member_state::down);
  // hsm1 fails the request, and its fresh workers cannot start.
  p.token(1).script(wire::op::encrypt, fake_step::device_error());
  p.token(1).always(wire::op::hello, fake_step::device_error());
  auto r = execute(p);
  REQUIRE(!r);
  CHECK(r.error().kind == error_kind::unavailable);
  CHECK(p.token(0).calls(wire::op::hello) == 1);  // hsm0 failed an attempt just now: not yet again
  CHECK(r.error().message.find("hsm0 down") != std::string::npos);
  p.time->skip(13s);
  auto again = execute(p);
  CHECK(answered_by(again) == "hsm0");
  CHECK(p.token(0).calls(wire::op::hello) == 2);
}
