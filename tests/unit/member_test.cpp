// One member's state machine on a fake worker (tests/lib/fake_worker.h): start, known-answer
// check, join, failures and replacement, back-off, the refused PIN, recycling, idle probes.
// No processes: the clock is moved on where waiting would be slow, the dice sit at the bottom.
#include <doctest/doctest.h>

#include "hsm_backends/pkcs11/p11.h"
#include "hsm_backends/wire/messages.h"
#include "tests/lib/fake_pool.h"

using namespace hsmb;
using namespace hsmb::test;
using namespace std::chrono_literals;
using st = member_state;

namespace {

// The states a member went through, as its state-change callbacks saw them:
// "starting syncing serving".
struct state_log {
  std::string seen;
  void watch(member& m) {
    seen = std::string(to_string(m.state()));
    m.on_state_change([this, &m] {
      auto s = std::string(to_string(m.state()));
      if (seen == s || seen.ends_with(" " + s)) return;  // the end of an attempt that changed nothing
      seen += (seen.empty() ? "" : " ") + s;
    });
  }
};

bytes cipher_payload() {
  bytes b;
  wire::encode_cipher(b, "hsmb/k/v1", as_bytes("plaintext"), {});
  return b;
}

hsm_result<bytes> call(fake_pool& p, member& m, std::chrono::milliseconds budget = 1s) {
  auto payload = cipher_payload();
  return p.await(m.call(wire::op::encrypt, payload, budget));
}

bool is(member& m, member_state s) { return m.state() == s; }
std::string last_error(member& m) {
  auto e = m.snapshot().last_error;
  return e ? e->code : "none";
}
bool down_for_now(member& m) { return m.state() == st::down && !m.restarting(); }

// The back-off ceilings the member drew its waits under (draws from a tenth of the probe interval).
std::vector<double> backoff_ceilings(const scripted_random& r, double floor) {
  std::vector<double> out;
  for (auto& d : r.draws())
    if (d.lo == floor) out.push_back(d.hi);
  return out;
}

}  // namespace

TEST_CASE("a member starts, catches up while syncing, then serves") {
  fake_pool p(1);
  auto& m = p.at(0);
  state_log log;
  log.watch(m);
  std::vector<member_state> during_join;
  m.on_join([&](member& joining) -> boost::asio::awaitable<bool> {
    during_join.push_back(joining.state());
    co_return true;
  });
  CHECK(m.state() == st::starting);
  CHECK(m.restarting());
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  CHECK(log.seen == "starting syncing serving");
  CHECK(during_join == std::vector{st::syncing});
  CHECK(p.token(0).workers_started() == 1);
  CHECK(p.token(0).calls(wire::op::generate_key) == 1);  // the canary, made at the first start
  CHECK(p.token(0).calls(wire::op::sign) == 1);          // and its signature checked
  REQUIRE(m.snapshot().token);
  CHECK(m.snapshot().token->label == "hsm0");
  CHECK(m.settled());
}

TEST_CASE("a token that computes wrong never serves; once it computes right, it does") {
  fake_pool p(1);
  auto& m = p.at(0);
  p.token(0).answer_wrongly(true);
  state_log log;
  log.watch(m);
  p.start();
  REQUIRE(p.run_until([&] { return down_for_now(m); }));
  CHECK(log.seen == "starting down");
  CHECK(last_error(m) == "HSMB_KNOWN_ANSWER_FAILED");
  CHECK(p.token(0).calls(wire::op::sign) == 2);  // asked once more, with the pair read afresh
  CHECK(p.token(0).workers_alive() == 0);
  p.token(0).answer_wrongly(false);
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  CHECK(p.token(0).calls(wire::op::generate_key) == 1);  // the canary made at the first start is kept
}

TEST_CASE("a canary whose private half vanished before the sign (another broker's prune) is read afresh") {
  fake_pool p(1);
  auto& m = p.at(0);
  // Three times: nodes starting together may each change the pair once; none of it is the token's fault.
  p.token(0).script(wire::op::sign, fake_step::fail(ckr_object_not_found, "no object labelled 'hsmb-canary'"), 3);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  CHECK(p.token(0).workers_started() == 1);  // the same start, not a failed one
  CHECK(p.token(0).calls(wire::op::public_key) == 4);
  CHECK(p.token(0).calls(wire::op::sign) == 4);
}

TEST_CASE("a canary that changes at every attempt fails the start, saying so, not that the token computes wrong") {
  fake_pool p(1);
  auto& m = p.at(0);
  p.token(0).always(wire::op::sign, fake_step::fail(ckr_object_not_found, "no object labelled 'hsmb-canary'"));
  p.start();
  REQUIRE(p.run_until([&] { return down_for_now(m); }));
  CHECK(p.token(0).calls(wire::op::sign) == 4);
  REQUIRE(m.snapshot().last_error);
  CHECK(m.snapshot().last_error->message.find("changed at every attempt") != std::string::npos);
}

TEST_CASE("a device error replaces the worker; a member whose fresh worker cannot start is down") {
  fake_pool p(1);
  auto& m = p.at(0);
  state_log log;
  log.watch(m);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  p.token(0).script(wire::op::encrypt, fake_step::device_error());
  p.token(0).always(wire::op::hello, fake_step::device_error());
  auto r = call(p, m);
  REQUIRE(!r);
  CHECK(is_device_error(r.error()));
  REQUIRE(p.run_until([&] { return down_for_now(m); }));
  CHECK(log.seen == "starting serving suspect down");
  CHECK(last_error(m) == "CKR_DEVICE_ERROR");
  CHECK(m.snapshot().worker_restarts == 1);
  CHECK(p.token(0).workers_alive() == 0);
}

TEST_CASE("a down member is retried with a fresh worker, and serves again after syncing") {
  fake_pool p(1);
  auto& m = p.at(0);
  p.token(0).script(wire::op::hello, fake_step::fail(CKR_GENERAL_ERROR, "login refused in a start storm"), 3);
  int joins = 0;
  m.on_join([&](member&) -> boost::asio::awaitable<bool> {
    ++joins;
    co_return true;
  });
  state_log log;
  log.watch(m);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  CHECK(p.token(0).calls(wire::op::hello) == 4);
  CHECK(p.token(0).workers_started() == 1);
  CHECK(joins == 1);
  CHECK(log.seen == "starting down syncing serving");
}

TEST_CASE("a refused PIN leaves the member down, and nothing retries it") {
  fake_pool p(1);
  auto& m = p.at(0);
  p.token(0).always(wire::op::hello, fake_step::fail(CKR_PIN_INCORRECT, "PIN incorrect"));
  p.start();
  REQUIRE(p.run_until([&] { return down_for_now(m); }));
  CHECK(m.settled(2));  // found down for good: no second attempt is coming
  p.run_for(60ms);      // about a dozen back-offs (5 ms) would have passed
  CHECK(p.token(0).calls(wire::op::hello) == 1);
  p.time->skip(1h);
  m.reconnect(p.time->now());  // nor does a request that finds every member failed
  p.run_for(20ms);
  CHECK(p.token(0).calls(wire::op::hello) == 1);
  CHECK(m.state() == st::down);
  CHECK(last_error(m) == "CKR_PIN_INCORRECT");
}

TEST_CASE("a worker started alone leaves the member's worker be, is tried again after a failed start, and a refused PIN is not") {
  fake_pool p(1);
  auto& m = p.at(0);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  auto alone = p.await(m.start_alone(1s));
  REQUIRE(alone);
  CHECK(p.token(0).workers_alive() == 2);
  alone->reset();
  CHECK(p.token(0).workers_alive() == 1);
  CHECK(call(p, m));  // the member's own worker still serves
  auto before = p.token(0).calls(wire::op::hello);
  p.token(0).script(wire::op::hello, fake_step::fail(CKR_USER_PIN_NOT_INITIALIZED, "token file read half-written"));
  CHECK(p.await(m.start_alone(1s)));  // a failed start is tried again
  CHECK(p.token(0).calls(wire::op::hello) == before + 2);
  p.token(0).always(wire::op::hello, fake_step::fail(CKR_PIN_INCORRECT, "PIN incorrect"));
  auto refused = p.await(m.start_alone(1s));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().ckr == CKR_PIN_INCORRECT);
  CHECK(is(m, st::serving));  // its session is logged in already
  auto hellos = p.token(0).calls(wire::op::hello);
  CHECK_FALSE(p.await(m.start_alone(1s)));  // no second try with the PIN the HSM refused
  p.token(0).script(wire::op::encrypt, fake_step::crash());
  CHECK_FALSE(call(p, m));
  p.run_for(60ms);  // a dozen back-offs
  CHECK(p.token(0).calls(wire::op::hello) == hellos);  // nor a restart of the member's worker
}

TEST_CASE("a join hook that cannot learn what the member holds fails the join; a fresh worker tries again") {
  fake_pool p(1);
  auto& m = p.at(0);
  int joins = 0;
  m.on_join([&](member&) -> boost::asio::awaitable<bool> { co_return ++joins > 1; });
  state_log log;
  log.watch(m);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  CHECK(joins == 2);
  CHECK(p.token(0).workers_started() == 2);
  CHECK(p.token(0).workers_alive() == 1);  // the first one was killed
  CHECK(log.seen == "starting syncing down syncing serving");
}

TEST_CASE("a crashed worker is replaced, and the member serves again") {
  fake_pool p(1);
  auto& m = p.at(0);
  state_log log;
  log.watch(m);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  p.token(0).script(wire::op::encrypt, fake_step::crash());
  auto r = call(p, m);
  REQUIRE(!r);
  CHECK(r.error().where == fault::worker_crashed);
  REQUIRE(p.run_until([&] { return is(m, st::serving) && p.token(0).workers_started() == 2; }));
  CHECK(log.seen == "starting serving suspect serving");
  CHECK(m.snapshot().worker_restarts == 1);
  CHECK(last_error(m) == "HSMB_WORKER_CRASHED");
  CHECK(call(p, m));
}

TEST_CASE("a hung call is killed at the call deadline and its worker replaced") {
  fake_pool p(1, [](config& c) { c.call_timeout = 60ms; });
  auto& m = p.at(0);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  p.token(0).script(wire::op::encrypt, fake_step::hang());
  auto sent = std::chrono::steady_clock::now();
  auto r = call(p, m, 1s);
  REQUIRE(!r);
  CHECK(r.error().where == fault::call_timeout);
  CHECK(std::chrono::steady_clock::now() - sent >= 60ms);
  REQUIRE(p.run_until([&] { return is(m, st::serving) && p.token(0).workers_started() == 2; }));
  CHECK(last_error(m) == "HSMB_CALL_TIMEOUT");
}

TEST_CASE("a request out of time gives up on a slow call without taking its worker down") {
  fake_pool p(1);
  auto& m = p.at(0);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  p.token(0).script(wire::op::encrypt, fake_step::hang());
  auto r = call(p, m, 30ms);  // the call deadline is 500 ms
  REQUIRE(!r);
  CHECK(r.error().where == fault::gave_up);
  CHECK(m.state() == st::serving);
  CHECK(p.token(0).workers_alive() == 1);
  CHECK(p.token(0).workers_started() == 1);
  CHECK(call(p, m));
}

TEST_CASE("a hedge makes a serving member suspect; an answer from the same worker makes it serving again") {
  fake_pool p(1, [](config& c) { c.probe_interval = 10s; });  // no probe puts it back first
  auto& m = p.at(0);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  m.note_hedge();
  CHECK(m.state() == st::suspect);
  CHECK(m.snapshot().hedges == 1);
  CHECK(call(p, m));
  CHECK(m.state() == st::serving);
  CHECK(p.token(0).workers_started() == 1);  // slow is not broken: no new worker
}

TEST_CASE("a worker is recycled by age, make before break, while the member keeps serving") {
  fake_pool p(1);  // worker_max_age 1 h
  auto& m = p.at(0);
  state_log log;
  log.watch(m);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  p.run_for(60ms);  // past a probe interval: the age was read again, and is not reached
  CHECK(m.snapshot().worker_recycles == 0);
  // A call in flight on the old worker when the fresh one takes over.
  p.token(0).script(wire::op::encrypt, fake_step::hang());
  auto payload = cipher_payload();
  std::optional<hsm_result<bytes>> in_flight;
  boost::asio::co_spawn(p.io, m.call(wire::op::encrypt, payload, 1s),
                        [&](std::exception_ptr, hsm_result<bytes> r) { in_flight = r; });
  REQUIRE(p.run_until([&] { return m.snapshot().in_flight == 1; }));
  p.time->skip(1h);
  REQUIRE(p.run_until([&] { return m.snapshot().worker_recycles == 1; }));
  CHECK(p.token(0).workers_started() == 2);
  CHECK(p.token(0).calls(wire::op::sign) == 2);  // the fresh worker passed the check before taking over
  p.run_for(30ms);
  CHECK(p.token(0).workers_alive() == 2);  // the old one finishes its call first
  p.token(0).resume();
  REQUIRE(p.run_until([&] { return in_flight.has_value(); }));
  CHECK(*in_flight);
  REQUIRE(p.run_until([&] { return p.token(0).workers_alive() == 1; }));
  CHECK(log.seen == "starting serving");
  CHECK(m.snapshot().worker_restarts == 0);
}

TEST_CASE("back-off grows from the probe interval to its cap, and starts over once the member serves") {
  fake_pool p(1, [](config& c) {
    c.probe_interval = 20ms;
    c.max_backoff = 70ms;
  });
  auto& m = p.at(0);
  p.token(0).script(wire::op::hello, fake_step::device_error(), 5);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));  // each wait 2 ms: the dice at the bottom
  CHECK(backoff_ceilings(*p.random, 2.0) == std::vector<double>{20, 40, 70, 70, 70});
  p.token(0).always(wire::op::hello, fake_step::device_error());
  p.token(0).script(wire::op::encrypt, fake_step::device_error());
  CHECK(!call(p, m));
  REQUIRE(p.run_until([&] { return backoff_ceilings(*p.random, 2.0).size() == 7; }));
  CHECK(backoff_ceilings(*p.random, 2.0) == std::vector<double>{20, 40, 70, 70, 70, 20, 40});
}

TEST_CASE("an idle serving member is probed; a failed probe replaces its worker") {
  fake_pool p(1, [](config& c) { c.worker_max_age = 100h; });  // idle probes after an hour, no recycling
  auto& m = p.at(0);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  p.run_for(60ms);  // past a probe interval: not idle long enough
  CHECK(p.token(0).calls(wire::op::probe) == 0);
  p.time->skip(1h);
  REQUIRE(p.run_until([&] { return p.token(0).calls(wire::op::probe) == 1; }));
  CHECK(m.snapshot().probes == 1);
  p.token(0).script(wire::op::probe, fake_step::device_error());
  p.time->skip(1h);
  REQUIRE(p.run_until([&] { return p.token(0).workers_started() == 2 && is(m, st::serving); }));
  CHECK(last_error(m) == "CKR_DEVICE_ERROR");
}

TEST_CASE("reconnect retries a down member at once, but at most once a probe interval") {
  fake_pool p(1, [](config& c) { c.probe_interval = 10s; });  // its own retry is a second away at least
  auto& m = p.at(0);
  p.token(0).script(wire::op::hello, fake_step::device_error());
  p.start();
  REQUIRE(p.run_until([&] { return down_for_now(m); }));
  CHECK(m.settled(1));
  CHECK(!m.settled(2));  // one failed attempt only: a hand-off waits for a second
  m.reconnect(p.time->now());
  p.run_for(30ms);
  CHECK(p.token(0).calls(wire::op::hello) == 1);  // its last attempt was just now
  p.time->skip(13s);
  m.reconnect(p.time->now());
  REQUIRE(p.run_until([&] { return is(m, st::serving); }, 500ms));
  CHECK(p.token(0).calls(wire::op::hello) == 2);
}

TEST_CASE("reconnect replaces a worker older than the request, and leaves a fresher one alone") {
  fake_pool p(1);
  auto& m = p.at(0);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  auto before = p.time->now() - 1s;
  m.reconnect(before);  // the worker started after the request did: already fresh
  p.run_for(20ms);
  CHECK(p.token(0).workers_started() == 1);
  m.reconnect(p.time->now());
  REQUIRE(p.run_until([&] { return p.token(0).workers_started() == 2 && is(m, st::serving); }));
}

TEST_CASE("the fake token keeps metadata records in memory, across its workers") {
  fake_pool p(1);
  auto& m = p.at(0);
  p.start();
  REQUIRE(p.run_until([&] { return is(m, st::serving); }));
  auto put = [&](std::string_view name, std::string_view value) {
    bytes b;
    wire::encode_put_metadata(b, name, as_bytes(value));
    return p.await(m.call(wire::op::put_metadata, b, 1s));
  };
  auto list = [&] {
    bytes none;
    auto r = p.await(m.call(wire::op::list_metadata, none, 1s));
    REQUIRE(r);
    auto records = wire::decode_metadata_list(*r);
    REQUIRE(records);
    std::string out;
    for (auto& rec : *records) out += rec.name + "=" + std::string(as_chars(rec.value)) + " ";
    return out;
  };
  CHECK(put("k", "1"));
  CHECK(put("~claim/k/a", "100"));
  CHECK(put("k", "2"));
  CHECK(list() == "k=2 ~claim/k/a=100 ");
  m.reconnect(p.time->now());  // a fresh worker on the same token
  REQUIRE(p.run_until([&] { return p.token(0).workers_started() == 2 && is(m, st::serving); }));
  bytes label;
  wire::encode_label(label, "~claim/k/a");
  CHECK(p.await(m.call(wire::op::delete_metadata, label, 1s)));
  CHECK(list() == "k=2 ");
  CHECK(p.token(0).records().size() == 1);
}
