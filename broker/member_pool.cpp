#include "broker/member_pool.h"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "broker/worker_client.h"
#include "common/coro/resume_slot.h"
#include "common/coro/wake_list.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Attempts of one request on several members; the first answer settles it. Shared with the
// attempts, which may outlive the request (a hedged call that lost the race).
struct race {
  explicit race(asio::io_context& io) : hedge_timer(io) {}
  resume_slot wake;                // an attempt ended, or it is time to hedge
  asio::steady_timer hedge_timer;  // armed only while a hedge is possible
  std::optional<broker_result<bytes>> answer;  // a success, or a caller error
  std::vector<member*> failed;
  std::vector<member*> device_failed;  // failed with a device-class error: worth a reconnect
  std::string failures;
  bool all_overloaded = true;
  int outstanding = 0;
};

awaitable<void> attempt(std::shared_ptr<race> r, member* m, wire::op op, bytes payload, milliseconds budget) {
  auto result = co_await m->call(op, payload, budget);
  secure_wipe(payload.data(), payload.size());
  --r->outstanding;
  if (result) {
    if (!r->answer) r->answer = std::move(*result);
  } else if (!try_elsewhere(result.error())) {
    if (!r->answer) r->answer = std::unexpected(caller_error(result.error()));
  } else {
    r->failed.push_back(m);
    if (is_device_error(result.error())) r->device_failed.push_back(m);
    if (classify(result.error()) != hsm_verdict::turned_away) r->all_overloaded = false;
    r->failures += (r->failures.empty() ? "" : "; ") + m->name() + ": " + with_name(result.error());
  }
  r->wake.fire();
}

// "hsm1 down: <last error> (CKR_...); hsm2 serving": what an operator needs from a 503.
std::string describe(const std::vector<member_snapshot>& members) {
  std::string out;
  for (auto& m : members) {
    out += (out.empty() ? "" : "; ") + m.name + " " + std::string(to_string(m.state));
    if (m.last_error) out += ": " + with_name(m.last_error->message, m.last_error->code);
  }
  return out;
}

milliseconds until(const time_source& time, clock::time_point t) {
  return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(t - time.now()));
}

member_deps worker_processes(asio::io_context& io, const std::string& program) {
  auto spawn = [&io, program](const member_config& m) -> std::unique_ptr<worker_channel> {
    return std::make_unique<worker_client>(io, worker_launch{program, m.env, m.name});
  };
  return {spawn, std::make_shared<real_time>(), os_seeded_random()};
}

}  // namespace

struct member_pool::waiter_list : wake_list {};

struct member_pool::round_result {
  std::optional<broker_result<bytes>> answer;
  std::string failures;
  std::vector<member*> device_failed;
  bool overloaded = false;  // every attempt was turned away by its HSM (CKR_FUNCTION_CANCELED)
};

member_pool::member_pool(asio::io_context& io, const config& cfg, const std::string& worker_program)
    : member_pool(io, cfg, worker_processes(io, worker_program)) {}

member_pool::member_pool(asio::io_context& io, const config& cfg, member_deps deps)
    : io_(io), request_timeout_(cfg.request_timeout), time_(deps.time), random_(deps.random),
      waiters_(std::make_shared<waiter_list>()) {
  auto gate = std::make_shared<recycle_gate>();
  member_timing timing{cfg.call_timeout, cfg.probe_interval, cfg.worker_max_age, cfg.idle_probe_interval, cfg.max_backoff};
  for (std::size_t i = 0; i < cfg.members.size(); ++i)
    members_.push_back(std::make_unique<member>(io, i, cfg.members[i], timing, gate, deps));
  for (auto& m : members_) m->on_state_change([this] { wake_waiters(); });
}

void member_pool::run() {
  for (auto& m : members_) m->run();
}

void member_pool::stop() {
  for (auto& m : members_) m->stop();
}

std::size_t member_pool::serving_count() const {
  return static_cast<std::size_t>(
      std::count_if(members_.begin(), members_.end(), [](auto& m) { return m->state() == member_state::serving; }));
}

std::vector<member_snapshot> member_pool::snapshots() const {
  std::vector<member_snapshot> out;
  for (auto& m : members_) out.push_back(m->snapshot());
  return out;
}

std::vector<member*> member_pool::routing_order(const member_filter& eligible) {
  std::vector<route_candidate> candidates;
  for (auto& m : members_)
    if (m->state() != member_state::down && eligible(*m)) candidates.push_back(m->candidate());
  std::vector<member*> order;
  for (auto i : route_order(std::move(candidates), *random_)) order.push_back(members_[i].get());
  return order;
}

awaitable<member_pool::round_result> member_pool::run_round(wire::op op, byte_view payload, const member_filter& eligible,
                                                            repeatable rep, clock::time_point deadline) {
  round_result out;
  auto order = routing_order(eligible);
  if (order.empty()) {
    out.failures = "no member that holds the key is serving";
    co_return out;
  }
  auto r = std::make_shared<race>(io_);
  std::size_t next = 0;
  auto launch = [&] {
    ++r->outstanding;
    asio::co_spawn(io_, attempt(r, order[next++], op, bytes(payload.begin(), payload.end()), until(*time_, deadline)),
                   asio::detached);
  };
  member* primary = order[0];  // the member the hedge timer watches
  launch();
  auto hedge_at = time_->now() + primary->hedge_delay();
  bool hedged = false;
  for (;;) {
    if (r->answer || time_->now() >= deadline) break;
    if (r->outstanding == 0) {
      if (next >= order.size()) break;
      r->failed.back()->note_failover();
      primary = order[next];
      launch();
      hedge_at = time_->now() + primary->hedge_delay();
      continue;
    }
    bool can_hedge = rep == repeatable::yes && !hedged && next < order.size();
    if (can_hedge && time_->now() >= hedge_at) {
      primary->note_hedge();
      hedged = true;
      launch();
      continue;
    }
    // No deadline timer: every attempt ends by the deadline, since member::call bounds each of
    // its waits by the budget it was given.
    r->wake.reset();
    if (can_hedge) {
      r->hedge_timer.expires_after(std::min(hedge_at, deadline) - time_->now());
      r->hedge_timer.async_wait([r](boost::system::error_code ec) {
        if (!ec) r->wake.fire();
      });
    }
    co_await r->wake.wait();
    if (can_hedge) r->hedge_timer.cancel();
  }
  out.answer = std::move(r->answer);
  out.failures = r->failures.empty() ? "no answer within the request deadline" : r->failures;
  out.device_failed = r->device_failed;
  out.overloaded = !r->failed.empty() && r->all_overloaded;
  co_return out;
}

awaitable<broker_result<bytes>> member_pool::execute(wire::op op, byte_view payload, const member_filter& eligible,
                                                  repeatable rep) {
  auto started = time_->now();
  auto deadline = started + request_timeout_;
  auto first = co_await run_round(op, payload, eligible, rep, deadline);
  if (first.answer) co_return std::move(*first.answer);
  if (first.overloaded) co_return overloaded("every member is overloaded: " + first.failures);
  if (time_->now() >= deadline)
    co_return unavailable("no member could serve the request in time: " + first.failures + " [" + describe(snapshots()) + "]");
  // Every member failed: the war story's fix. Fresh workers for the members that can serve this
  // request and failed (or are down), then one more try.
  auto retry = reconnect_candidates(first.device_failed, eligible);
  if (retry.empty())
    co_return unavailable("no member could serve the request: " + first.failures + " [" + describe(snapshots()) + "]");
  for (auto* m : retry) m->reconnect(started);
  co_await wait_until_settled(retry, deadline);
  auto second = co_await run_round(op, payload, eligible, rep, deadline);
  if (second.answer) co_return std::move(*second.answer);
  co_return unavailable("no member could serve the request (all reconnected and retried): " + second.failures + " [" +
                         describe(snapshots()) + "]");
}

std::vector<member*> member_pool::reconnect_candidates(const std::vector<member*>& device_failed,
                                                       const member_filter& eligible) {
  std::vector<member*> out = device_failed;
  for (auto& m : members_)
    if (m->state() == member_state::down && eligible(*m) && std::find(out.begin(), out.end(), m.get()) == out.end())
      out.push_back(m.get());
  return out;
}

// Until one of `watched` serves, or none of them is starting or restarting, or the deadline.
awaitable<void> member_pool::wait_until_settled(std::vector<member*> watched, clock::time_point deadline) {
  auto serving = [&] { return std::any_of(watched.begin(), watched.end(), [](member* m) { return m->state() == member_state::serving; }); };
  auto restarting = [&] { return std::any_of(watched.begin(), watched.end(), [](member* m) { return m->restarting(); }); };
  co_await wait_until([&] { return serving() || !restarting(); }, deadline);
}

awaitable<void> member_pool::wait_until(const std::function<bool()>& done, clock::time_point deadline) {
  while (!done() && time_->now() < deadline) co_await waiters_->wait_for(deadline - time_->now());
}

bool member_pool::settled(int attempts) const {
  return std::all_of(members_.begin(), members_.end(), [&](auto& m) { return m->settled(attempts); });
}

awaitable<void> member_pool::wait_any_started(milliseconds timeout) {
  std::vector<member*> all;
  for (auto& m : members_) all.push_back(m.get());
  co_await wait_until_settled(std::move(all), time_->now() + timeout);
}

void member_pool::wake_waiters() { waiters_->wake_all(); }

bool try_elsewhere(const hsm_error& e) {
  switch (classify(e)) {
    case hsm_verdict::member_failed:
    case hsm_verdict::key_missing:
    case hsm_verdict::turned_away:
    case hsm_verdict::out_of_time:
      return true;
    default:
      return false;
  }
}

broker_error caller_error(const hsm_error& e) {
  auto with_code = [&] { return with_name(e); };
  switch (classify(e)) {
    case hsm_verdict::tag_mismatch:
      return {error_kind::invalid_input, error_origin::caller, "cipher: message authentication failed"};
    case hsm_verdict::bad_input:
      return {error_kind::invalid_input, error_origin::caller, "invalid input for this key: " + e.message};
    case hsm_verdict::turned_away:
      return {error_kind::overloaded, error_origin::device, "member is overloaded: " + e.message};
    case hsm_verdict::unsupported:
      return {error_kind::invalid_input, error_origin::device, "the HSM does not support this operation: " + with_code()};
    case hsm_verdict::member_failed:
    case hsm_verdict::key_missing:
    case hsm_verdict::out_of_time:
      return {error_kind::unavailable, e.where == fault::device ? error_origin::device : error_origin::transport, with_code()};
    case hsm_verdict::rejected:
      break;
  }
  return {error_kind::internal, error_origin::device, "HSM rejected the operation: " + with_code()};
}

}  // namespace hsmb
