#include "broker/member.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <deque>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "broker/known_answer.h"
#include "broker/typed_call.h"
#include "common/coro/wake_list.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string_view to_string(member_state s) {
  switch (s) {
    case member_state::starting: return "starting";
    case member_state::serving: return "serving";
    case member_state::suspect: return "suspect";
    case member_state::down: return "down";
    case member_state::syncing: return "syncing";
  }
  return "unknown";
}

namespace {

// How often a down member's log reminds that it is still down (with a count of attempts).
constexpr auto down_reminder_every = std::chrono::seconds(60);

// "45s", "3m05s", "2h10m".
std::string duration_text(clock::duration d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s % 3600 / 60));
  return buf;
}

// Floor of the hedge delay: below it, scheduling noise alone would trigger hedges.
constexpr milliseconds hedge_floor{20};
constexpr int hedge_p99_multiple = 3;

// Recent call latencies; percentiles are recomputed every few samples, not per request.
// Samples expire: a member that got no traffic for a while must not be judged by an old slow
// spell forever (it would never be picked again, so it would never be sampled again).
class latency_window {
 public:
  explicit latency_window(const time_source& time) : time_(time) {}
  void add(std::chrono::microseconds d) {
    auto now = time_.now();
    if (samples_.size() == capacity) samples_.pop_front();
    samples_.push_back({now, d.count()});
    if (++since_update_ >= refresh_every || samples_.size() < refresh_every) refresh(now);
  }
  double p50_ms() const { return fresh() ? p50_ : 0; }
  std::size_t samples() const { return fresh() ? samples_.size() : 0; }
  double p99_ms() const { return fresh() ? p99_ : 0; }

 private:
  static constexpr auto max_age = std::chrono::seconds(10);
  bool fresh() const { return !samples_.empty() && time_.now() - samples_.back().at < max_age; }
  void refresh(clock::time_point now) {
    since_update_ = 0;
    while (!samples_.empty() && now - samples_.front().at > max_age) samples_.pop_front();
    std::vector<std::int64_t> v;
    v.reserve(samples_.size());
    for (auto& s : samples_) v.push_back(s.us);
    p50_ = at(v, 0.50);
    p99_ = at(v, 0.99);
  }
  static double at(std::vector<std::int64_t>& v, double p) {
    auto k = static_cast<std::size_t>(p * double(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return double(v[k]) / 1000.0;
  }
  struct sample {
    clock::time_point at;
    std::int64_t us;
  };
  static constexpr std::size_t capacity = 1024;
  static constexpr int refresh_every = 32;
  const time_source& time_;
  std::deque<sample> samples_;
  int since_update_ = 0;
  double p50_ = 0, p99_ = 0;
};

milliseconds jittered(random_source& random, milliseconds base, double spread = 0.2) {
  double factor = random.uniform(1.0 - spread, 1.0 + spread);  // sidecars must not act in step
  return milliseconds(static_cast<std::int64_t>(double(base.count()) * factor));
}

// The wait before retry number `failures` of a down member: exponential from the probe interval,
// capped, with full jitter (uniform from a tenth of the probe interval to the ceiling), so a
// fleet of brokers whose HSM failed together does not retry, or reconnect when it returns, in step.
milliseconds backoff(random_source& random, int failures, milliseconds base, milliseconds cap) {
  double ceiling = double(base.count()) * std::pow(2.0, std::clamp(failures - 1, 0, 30));
  ceiling = std::min(ceiling, double(cap.count()));
  double floor = std::min(ceiling, double(base.count()) / 10);
  return milliseconds(static_cast<std::int64_t>(random.uniform(floor, ceiling)));
}

}  // namespace

struct member::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& io, const member_config& cfg, member_timing timing, std::shared_ptr<recycle_gate> gate,
       member_deps deps)
      : io(io), cfg(cfg), timing(timing), gate(std::move(gate)), deps(std::move(deps)), time(*this->deps.time),
        random(*this->deps.random), state_since(time.system_now()), latency(time) {}

  asio::io_context& io;
  member_config cfg;
  member_timing timing;
  std::shared_ptr<recycle_gate> gate;
  member_deps deps;
  time_source& time;
  random_source& random;
  std::unique_ptr<worker_channel> worker;
  std::uint64_t generation = 0;  // counts workers started; a call checks it is still on its worker
  clock::time_point worker_started{};
  clock::time_point last_activity{};
  member_state state = member_state::starting;
  std::chrono::system_clock::time_point state_since;
  std::optional<token_description> token;
  // What the token's mechanism list offers, worked out once per token: asked for every member on
  // every request. All of it until a token reported its mechanisms.
  capability_set offered = all_capabilities();
  std::optional<member_error_record> last_error;
  std::uint64_t requests = 0, errors = 0, restarts = 0, recycles = 0, failovers = 0, hedges = 0, probes = 0;
  latency_window latency;
  std::array<latency_histogram, wire::max_op_code + 1> op_latency;  // by op code
  wake_list wake;  // woken when the worker must be replaced or a down member retried
  bool replace_requested = false;
  std::uint64_t replace_generation = 0;  // the worker the pending replacement is for
  bool replacing = false;  // a worker (re)start is in progress
  int slow_in_flight = 0;  // key generations under way: no recycling meanwhile
  clock::time_point next_recycle{};
  clock::time_point last_attempt_end{};
  bool killing = false;    // the member itself is stopping a worker: not an error
  bool stopped = false;
  bool pin_was_refused = false;
  int failed_starts = 0;  // attempts in a row that did not end serving: the back-off's exponent
  wake_list state_waiters;
  clock::time_point down_since{}, next_down_reminder{};
  std::uint64_t attempts_while_down = 0;
  std::function<awaitable<bool>(member&)> join_hook;
  std::vector<std::function<void()>> state_callbacks;
  member* owner = nullptr;

  void set_state(member_state s) {
    if (s == state) return;
    auto now = time.now();
    if (s == member_state::down) {
      spdlog::warn("member {}: {} -> down{}", cfg.name, to_string(state),
                   last_error ? ": cannot start: " + with_name(last_error->message, last_error->code) : std::string());
      down_since = now;
      next_down_reminder = now + down_reminder_every;
      attempts_while_down = 0;
    } else if (state == member_state::down) {
      spdlog::info("member {}: down -> {} after {} ({} more failed attempts)", cfg.name, to_string(s),
                   duration_text(now - down_since), attempts_while_down);
    } else {
      spdlog::info("member {}: {} -> {}", cfg.name, to_string(state), to_string(s));
    }
    state = s;
    state_since = time.system_now();
    wake_waiters();
    for (auto& cb : state_callbacks) cb();
  }

  bool restarting() const {
    bool restart_pending = replacing || replace_requested;
    return state == member_state::starting ||
           ((state == member_state::suspect || state == member_state::down) && restart_pending);
  }

  void wake_waiters() { state_waiters.wake_all(); }

  // A down member's failed retries: counted, and told in one line a minute, not one each.
  void note_down_attempt(const hsm_error& e) {
    ++attempts_while_down;
    auto now = time.now();
    if (now < next_down_reminder) return;
    next_down_reminder = now + down_reminder_every;
    spdlog::warn("member {}: still down after {}, {} failed attempts so far; last: {}", cfg.name,
                 duration_text(now - down_since), attempts_while_down, with_name(e));
  }

  void record_error(const hsm_error& e) {
    ++errors;
    last_error = member_error_record{error_name(e), e.message, time.system_now()};
  }

  member_settings settings() const {
    member_settings s;
    s.module = cfg.module;
    s.token_label = cfg.token_label;
    s.slot = cfg.slot;
    s.pin = cfg.pin;
    s.sessions = cfg.sessions;
    return s;
  }

  // A worker that started and passed the known-answer check, or the reason it did not.
  awaitable<hsm_result<std::unique_ptr<worker_channel>>> launch_worker() {
    auto w = deps.new_worker(cfg);
    auto s = settings();  // named: GCC 12 mishandles temporaries in co_await expressions
    auto started = co_await w->start(s, timing.call_timeout);
    if (started) {
      token = *started;
      offered = token->mechanisms.empty() ? all_capabilities() : capabilities_of(token->mechanisms);
      auto checked = co_await known_answer_check(*w, timing.call_timeout);
      if (!checked) started = std::unexpected(checked.error());
    }
    if (!started) {
      w->kill("start failed");
      co_return std::unexpected(started.error());
    }
    co_return std::move(w);
  }

  void adopt(std::unique_ptr<worker_channel> w) {
    worker = std::move(w);
    ++generation;
    worker_started = last_activity = time.now();
    next_recycle = worker_started + jittered(random, timing.worker_max_age, 0.1);
    worker->on_exit([weak = weak_from_this(), gen = generation](const hsm_error& why) {
      auto self = weak.lock();
      if (!self || self->killing || self->generation != gen) return;
      self->record_error(why);  // it died on its own: crash, EOF or a missed deadline
      self->request_replacement();
    });
  }

  awaitable<bool> start_worker() {
    replacing = true;
    auto launched = co_await launch_worker();
    replacing = false;
    replace_requested = false;
    last_attempt_end = time.now();
    wake_waiters();
    for (auto& cb : state_callbacks) cb();  // the attempt is over, whatever its outcome
    if (!launched) {
      record_error(launched.error());
      ++failed_starts;
      pin_was_refused = pin_refused(launched.error());
      // The first failure is told by the move to down (supervise), the rest by note_down_attempt.
      if (state == member_state::down) note_down_attempt(launched.error());
      co_return false;
    }
    adopt(std::move(*launched));
    co_return true;
  }

  awaitable<void> wait_for_wake(milliseconds d) {
    if (replace_requested || stopped) co_return;
    co_await wake.wait_for(d);
  }

  void kill_worker(const std::string& why) {
    if (!worker) return;
    killing = true;
    worker->kill(why);
    killing = false;
  }

  // The current worker must go. A serving member turns suspect at once, so requests wait for
  // the fresh worker (or go elsewhere) instead of meeting a dead one.
  void request_replacement() {
    replace_requested = true;
    replace_generation = generation;
    if (state == member_state::serving) set_state(member_state::suspect);
    wake.wake_all();
  }

  awaitable<void> supervise() {
    auto self = shared_from_this();
    while (!stopped) {
      replace_requested = false;
      bool started = false;
      if (!pin_was_refused) started = co_await start_worker();  // refused to a worker started alone
      if (started && join_hook) {
        set_state(member_state::syncing);  // takes no requests until it holds what it missed
        started = co_await join_hook(*owner);
        if (!started) {
          kill_worker("catch-up failed");
          ++failed_starts;  // a member that logs in but cannot be caught up backs off too
          spdlog::warn("member {}: catch-up failed; retrying with a fresh worker", cfg.name);
        }
      }
      if (started) {
        failed_starts = 0;
        set_state(member_state::serving);
        co_await serve_until_replacement();
        kill_worker("replaced after a failure");
        if (!stopped) set_state(member_state::suspect);  // requests wait for the fresh worker
        ++restarts;
      } else {
        set_state(member_state::down);
        replace_requested = false;  // the failed worker's exit is not a new failure
        wake_waiters();             // no longer restarting: waiters settle now, not at the next try
        // A wrong PIN retried every second would lock the HSM user: wait for a restart or reload.
        if (pin_was_refused) spdlog::error("member {}: the HSM refused the PIN; not retrying until restarted", cfg.name);
        co_await wait_for_wake(pin_was_refused ? std::chrono::hours(24 * 365)
                                               : backoff(random, failed_starts, timing.probe_interval, timing.max_backoff));
      }
    }
  }

  awaitable<void> serve_until_replacement() {
    while (!replace_requested && !stopped) {
      auto now = time.now();
      if (now < next_recycle) {
        // A probe interval at most, then the age is read again: the time source may jump (tests).
        auto left = std::chrono::duration_cast<milliseconds>(next_recycle - now);
        co_await wait_for_wake(std::min(left, timing.probe_interval));
        continue;
      }
      co_await recycle();
    }
  }

  // Make before break: a fresh worker takes over, the old one finishes what it has, then goes.
  awaitable<void> recycle() {
    if (gate->busy || state != member_state::serving || slow_in_flight > 0) {
      co_await wait_for_wake(jittered(random, timing.probe_interval));
      co_return;
    }
    gate->busy = true;
    auto launched = co_await launch_worker();
    gate->busy = false;
    if (!launched) {
      spdlog::warn("member {}: recycling skipped, fresh worker failed: {}", cfg.name, launched.error().message);
      next_recycle = time.now() + jittered(random, timing.worker_max_age, 0.1);  // keep the old one for now
      co_return;
    }
    auto old = std::move(worker);
    adopt(std::move(*launched));
    ++recycles;
    if (replace_requested && replace_generation < generation) {
      replace_requested = false;  // the worker that failed meanwhile is the one just retired
      set_state(member_state::serving);
    }
    wake_waiters();
    spdlog::info("member {}: worker recycled", cfg.name);
    asio::co_spawn(io, retire(std::move(old), timing.call_timeout), asio::detached);
  }

  awaitable<void> retire(std::unique_ptr<worker_channel> old, milliseconds grace) {
    old->on_exit([](const hsm_error&) {});
    asio::steady_timer t(io);
    auto until = time.now() + grace;
    while (old->alive() && old->in_flight() > 0 && time.now() < until) {
      t.expires_after(milliseconds(20));  // calls in flight carry no completion event for us
      co_await t.async_wait(use_tuple);
    }
    old->kill("retired after recycling");
  }

  // Idle serving members and suspect ones are probed cheaply; down ones are retried by supervise().
  awaitable<void> probe_loop() {
    auto self = shared_from_this();
    asio::steady_timer t(io);
    auto idle_after = jittered(random, timing.idle_probe_interval);
    while (!stopped) {
      t.expires_after(jittered(random, timing.probe_interval));
      co_await t.async_wait(use_tuple);
      if (stopped || !worker || replacing) continue;
      // Idle serving members are probed rarely: at fleet scale probes are the HSMs' whole idle load.
      bool idle = time.now() - last_activity >= idle_after;
      if (!(state == member_state::suspect || (state == member_state::serving && idle))) continue;
      co_await probe_once();
      idle_after = jittered(random, timing.idle_probe_interval);
    }
  }

  awaitable<void> probe_once() {
    auto gen = generation;
    ++probes;
    wire::empty_payload none;
    auto r = co_await typed_call<wire::op::probe>(*worker, none, timing.call_timeout);
    if (gen != generation) co_return;
    last_activity = time.now();
    if (r) {
      if (state == member_state::suspect && !replacing) set_state(member_state::serving);
      co_return;
    }
    if (is_device_error(r.error()) && worker->alive()) {
      record_error(r.error());
      spdlog::warn("member {}: probe failed: {}; replacing its worker", cfg.name, with_name(r.error()));
      request_replacement();
    }
  }
};

member::member(asio::io_context& io, std::size_t index, const member_config& cfg, member_timing timing,
               std::shared_ptr<recycle_gate> gate, member_deps deps)
    : impl_(std::make_shared<impl>(io, cfg, timing, std::move(gate), std::move(deps))), index_(index) {
  impl_->owner = this;
}

member::~member() { stop(); }

const std::string& member::name() const { return impl_->cfg.name; }
member_state member::state() const { return impl_->state; }

void member::run() {
  // Restarts are cheap and a member without supervision would never recover: crash fast.
  auto rethrow = [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  };
  asio::co_spawn(impl_->io, impl_->supervise(), rethrow);
  asio::co_spawn(impl_->io, impl_->probe_loop(), rethrow);
}

void member::stop() {
  impl_->stopped = true;
  impl_->wake.wake_all();
  impl_->kill_worker("broker stopping");
}

void member::on_join(std::function<awaitable<bool>(member&)> hook) { impl_->join_hook = std::move(hook); }
void member::on_state_change(std::function<void()> callback) { impl_->state_callbacks.push_back(std::move(callback)); }
bool member::restarting() const { return impl_->restarting(); }

bool member::settled(int attempts) const {
  auto s = impl_->state;
  if (s == member_state::starting || s == member_state::syncing) return false;
  if (s != member_state::down) return true;
  return !impl_->restarting() && (impl_->pin_was_refused || impl_->failed_starts >= attempts);
}

awaitable<bool> member::wait_serving(milliseconds timeout) {
  auto self = impl_;
  auto& time = self->time;
  auto deadline = time.now() + timeout;
  while (self->restarting() && time.now() < deadline) co_await self->state_waiters.wait_for(deadline - time.now());
  co_return self->state == member_state::serving;
}

awaitable<hsm_result<std::unique_ptr<worker_channel>>> member::start_alone(milliseconds budget) {
  auto self = impl_;
  auto deadline = self->time.now() + std::min(budget, self->timing.call_timeout);
  asio::steady_timer pause(self->io);
  for (int attempt = 1;; ++attempt) {
    if (self->stopped || self->pin_was_refused)
      co_return std::unexpected(broker_fault(fault::worker_unavailable, "member " + self->cfg.name +
                                                                        (self->stopped ? " is stopping" : " refused its PIN")));
    auto w = self->deps.new_worker(self->cfg);
    auto s = self->settings();
    s.sessions = 1;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - self->time.now());
    auto started = co_await w->start(s, std::max(left, milliseconds(1)));
    if (started) co_return std::move(w);
    w->kill("start failed");
    if (pin_refused(started.error())) {
      if (!std::exchange(self->pin_was_refused, true))
        spdlog::error("member {}: the HSM refused the PIN to a fresh worker; no restarts until the broker is", self->cfg.name);
      co_return std::unexpected(started.error());
    }
    // SoftHSM2 read a token file another process was rewriting (CI: C_Login gave
    // CKR_USER_PIN_NOT_INITIALIZED while the other broker logged in): a moment later it reads whole.
    if (attempt == 3 || self->time.now() >= deadline) co_return std::unexpected(started.error());
    pause.expires_after(milliseconds(self->random.between(5, 25)));
    co_await pause.async_wait(asio::use_awaitable);
  }
}

awaitable<hsm_result<bytes>> member::call(wire::op op, byte_view payload, milliseconds budget, pace p) {
  auto self = impl_;
  auto& time = self->time;
  auto started = time.now();
  if (self->state != member_state::serving) co_await wait_serving(budget);
  auto left = budget - std::chrono::duration_cast<milliseconds>(time.now() - started);
  bool usable = self->state == member_state::serving || self->state == member_state::suspect ||
                self->state == member_state::syncing;  // catch-up copies reach a syncing member
  if (!usable || !self->worker || !self->worker->alive() || left.count() <= 0) {
    auto why = self->last_error ? self->last_error->message : std::string("not serving");
    co_return std::unexpected(broker_fault(fault::worker_unavailable, "member " + self->cfg.name + " is " +
                                                                    std::string(to_string(self->state)) + ": " + why));
  }
  ++self->requests;
  auto generation = self->generation;  // the worker may be replaced while this call waits
  // A hung call is killed at timeouts.call; a request that merely runs out of time gives up
  // without taking a healthy worker down with it.
  auto kill_after = p == pace::slow ? left : self->timing.call_timeout;
  if (p == pace::slow) ++self->slow_in_flight;
  auto sent = time.now();
  auto result = co_await self->worker->call(op, payload, kill_after, left);
  if (p == pace::slow) --self->slow_in_flight;
  self->last_activity = time.now();
  if (auto code = static_cast<std::size_t>(op); code < self->op_latency.size())
    self->op_latency[code].record(self->last_activity - sent);
  if (p == pace::normal)  // key generation says nothing about how fast requests will be
    self->latency.add(std::chrono::duration_cast<std::chrono::microseconds>(self->last_activity - sent));
  bool same_worker = self->generation == generation && self->worker && self->worker->alive();
  if (result && same_worker && self->state == member_state::suspect && !self->replacing && !self->replace_requested)
    self->set_state(member_state::serving);  // it was slow, not broken
  // A dead worker was already recorded by its exit callback; a live one that failed is replaced.
  if (!result && is_device_error(result.error()) && same_worker) {
    self->record_error(result.error());
    spdlog::warn("member {}: {}; replacing its worker", self->cfg.name, with_name(result.error()));
    self->request_replacement();
  }
  co_return result;
}

route_candidate member::candidate() const {
  route_candidate c;
  c.index = index_;
  c.healthy = impl_->state == member_state::serving;
  c.in_flight = impl_->worker ? impl_->worker->in_flight() : 0;
  c.latency_ms = impl_->latency.p50_ms();
  c.samples = impl_->latency.samples();
  c.weight = impl_->cfg.weight;
  return c;
}

bool member::offers(const capability_set& needed) const { return (needed & ~impl_->offered).none(); }

bool member::supports(key_type type) const { return offers(needed_to_hold(type)); }

bool member::can_copy(key_type type) const { return offers(needed_to_hold(type) | needed_to_copy(type)); }

milliseconds member::hedge_delay() const {
  auto p99 = milliseconds(static_cast<std::int64_t>(impl_->latency.p99_ms() * hedge_p99_multiple));
  return std::clamp(p99, hedge_floor, std::max(hedge_floor, impl_->timing.call_timeout / 2));
}

const latency_histogram& member::latency_of(wire::op op) const {
  return impl_->op_latency[std::min<std::size_t>(static_cast<std::size_t>(op), wire::max_op_code)];
}

void member::note_failover() { ++impl_->failovers; }

void member::note_hedge() {
  ++impl_->hedges;
  if (impl_->state == member_state::serving) impl_->set_state(member_state::suspect);  // slow: avoid until it answers
}

void member::reconnect(std::chrono::steady_clock::time_point since) {
  auto& s = *impl_;
  if (s.stopped || s.pin_was_refused || s.replacing || s.replace_requested) return;
  if (s.worker && s.worker->alive() && s.worker_started >= since) return;  // already fresh
  // A down member is retried at most once a probe interval however many requests ask (jittered,
  // so a fleet whose every member failed does not retry, and reconnect, in step).
  if (s.state == member_state::down && s.time.now() - s.last_attempt_end < jittered(s.random, s.timing.probe_interval))
    return;
  // A down member's retry is counted in its minute-by-minute reminder instead.
  if (s.state != member_state::down) spdlog::info("member {}: reconnecting (every member failed a request)", s.cfg.name);
  s.request_replacement();
}

member_snapshot member::snapshot() const {
  member_snapshot s;
  s.name = impl_->cfg.name;
  s.state = impl_->state;
  s.state_since = impl_->state_since;
  s.in_flight = impl_->worker ? impl_->worker->in_flight() : 0;
  s.p50_ms = impl_->latency.p50_ms();
  s.p99_ms = impl_->latency.p99_ms();
  s.requests = impl_->requests;
  s.errors = impl_->errors;
  s.failovers = impl_->failovers;
  s.hedges = impl_->hedges;
  s.worker_restarts = impl_->restarts;
  s.worker_recycles = impl_->recycles;
  s.probes = impl_->probes;
  s.last_error = impl_->last_error;
  s.token = impl_->token;
  return s;
}

}  // namespace hsmb
