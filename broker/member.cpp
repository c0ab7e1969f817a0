#include "broker/member.h"

#include <algorithm>
#include <deque>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;
using clock = std::chrono::steady_clock;
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

// Recent call latencies for p50/p99; a ring so memory stays flat.
class latency_window {
 public:
  void add(std::chrono::microseconds d) {
    if (samples_.size() == capacity) samples_.pop_front();
    samples_.push_back(d.count());
  }
  double percentile_ms(double p) const {
    if (samples_.empty()) return 0;
    std::vector<std::int64_t> v(samples_.begin(), samples_.end());
    auto k = static_cast<std::size_t>(p * double(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return double(v[k]) / 1000.0;
  }

 private:
  static constexpr std::size_t capacity = 1024;
  std::deque<std::int64_t> samples_;
};

std::chrono::milliseconds jittered(std::chrono::milliseconds base) {
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> factor(0.8, 1.2);  // sidecars must not probe in step
  return std::chrono::milliseconds(static_cast<std::int64_t>(double(base.count()) * factor(rng)));
}

}  // namespace

struct member::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& io, const member_config& cfg, std::string program, member_timing timing)
      : io(io), cfg(cfg), program(std::move(program)), timing(timing), wake(io) {}

  asio::io_context& io;
  member_config cfg;
  std::string program;
  member_timing timing;
  std::unique_ptr<worker_client> worker;
  member_state state = member_state::starting;
  std::chrono::system_clock::time_point state_since = std::chrono::system_clock::now();
  std::optional<token_description> token;
  std::optional<member_error_record> last_error;
  std::uint64_t requests = 0, errors = 0, restarts = 0, starts = 0;
  latency_window latency;
  asio::steady_timer wake;  // cancelled when the worker must be replaced
  bool replace_requested = false;
  bool killing = false;  // the member itself is stopping the worker: not an error
  bool stopped = false;
  std::vector<asio::steady_timer*> state_waiters;
  std::vector<std::function<void(member&)>> serving_callbacks;
  member* owner = nullptr;

  void set_state(member_state s) {
    if (s == state) return;
    spdlog::info("member {}: {} -> {}", cfg.name, to_string(state), to_string(s));
    state = s;
    state_since = std::chrono::system_clock::now();
    for (auto* t : state_waiters) t->cancel();
    state_waiters.clear();
  }

  void record_error(const hsm_error& e) {
    ++errors;
    last_error = member_error_record{e.ckr, e.message, std::chrono::system_clock::now()};
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

  awaitable<bool> start_worker() {
    if (starts++ > 0) ++restarts;
    worker = std::make_unique<worker_client>(io, worker_launch{program, cfg.env, cfg.name});
    worker->on_exit([weak = weak_from_this()](const hsm_error& why) {
      auto self = weak.lock();
      if (!self || self->killing) return;
      self->record_error(why);  // it died on its own: crash, EOF or a missed deadline
      self->request_replacement();
    });
    auto s = settings();  // named: GCC 12 mishandles temporaries in co_await expressions
    auto started = co_await worker->start(s, timing.call_timeout);
    if (!started) {
      record_error(started.error());
      spdlog::warn("member {}: cannot start: {} ({})", cfg.name, started.error().message, ckr_name(started.error().ckr));
      kill_worker("start failed");
      worker.reset();
      co_return false;
    }
    token = *started;
    co_return true;
  }

  awaitable<void> wait_for_wake(std::chrono::milliseconds d) {
    if (replace_requested || stopped) co_return;
    wake.expires_after(d);
    co_await wake.async_wait(use_tuple);
  }

  awaitable<void> supervise() {
    auto self = shared_from_this();
    while (!stopped) {
      replace_requested = false;
      if (co_await start_worker()) {
        set_state(member_state::serving);
        for (auto& cb : serving_callbacks) cb(*owner);
        while (!replace_requested && !stopped) co_await wait_for_wake(std::chrono::hours(24));
        kill_worker("replaced after a failure");
        if (!stopped) set_state(member_state::starting);
      } else {
        set_state(member_state::down);
        replace_requested = false;  // the failed worker's exit is not a new failure
        // A wrong PIN retried every second would lock the HSM user: wait for a restart or reload.
        bool pin_refused = last_error && (last_error->ckr == 0xA0 /* CKR_PIN_INCORRECT */ || last_error->ckr == 0xA4 /* CKR_PIN_LOCKED */);
        if (pin_refused) spdlog::error("member {}: the HSM refused the PIN; not retrying until the broker is restarted", cfg.name);
        co_await wait_for_wake(pin_refused ? std::chrono::hours(24 * 365) : jittered(timing.probe_interval));
      }
    }
  }

  void kill_worker(const std::string& why) {
    if (!worker) return;
    killing = true;
    worker->kill(why);
    killing = false;
  }

  void request_replacement() {
    replace_requested = true;
    wake.cancel();
  }
};

member::member(asio::io_context& io, std::size_t index, const member_config& cfg, std::string worker_program,
               member_timing timing)
    : impl_(std::make_shared<impl>(io, cfg, std::move(worker_program), timing)), index_(index) {
  impl_->owner = this;
}

member::~member() { stop(); }

const std::string& member::name() const { return impl_->cfg.name; }
member_state member::state() const { return impl_->state; }

void member::run() {
  // Restarts are cheap and a member without supervision would never recover: crash fast.
  asio::co_spawn(impl_->io, impl_->supervise(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
}

void member::stop() {
  impl_->stopped = true;
  impl_->wake.cancel();
  impl_->kill_worker("broker stopping");
}

void member::on_serving(std::function<void(member&)> callback) { impl_->serving_callbacks.push_back(std::move(callback)); }

awaitable<bool> member::wait_serving(std::chrono::milliseconds timeout) {
  auto self = impl_;
  auto deadline = clock::now() + timeout;
  while (self->state == member_state::starting && clock::now() < deadline) {
    asio::steady_timer t(self->io, deadline);
    self->state_waiters.push_back(&t);
    co_await t.async_wait(use_tuple);
    std::erase(self->state_waiters, &t);
  }
  co_return self->state == member_state::serving;
}

awaitable<hsm_result<bytes>> member::call(wire::op op, byte_view payload, std::chrono::milliseconds budget, pace p) {
  auto self = impl_;
  auto started = clock::now();
  if (self->state == member_state::starting) co_await wait_serving(budget);
  auto left = budget - std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started);
  if (self->state != member_state::serving || !self->worker || left.count() <= 0) {
    auto why = self->last_error ? self->last_error->message : std::string("not serving");
    co_return std::unexpected(hsm_error{ckr_worker_unavailable, "member " + self->cfg.name + " is " +
                                                                    std::string(to_string(self->state)) + ": " + why});
  }
  ++self->requests;
  auto generation = self->starts;  // the worker may be replaced while this call waits
  auto limit = p == pace::slow ? left : std::min(left, self->timing.call_timeout);
  auto result = co_await self->worker->call(op, payload, limit);
  self->latency.add(std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - started));
  // A dead worker was already recorded by its exit callback; a live one that failed is replaced.
  if (!result && is_device_error(result.error().ckr) && self->starts == generation && self->worker &&
      self->worker->alive()) {
    self->record_error(result.error());
    spdlog::warn("member {}: {} ({}); replacing its worker", self->cfg.name, result.error().message,
                 ckr_name(result.error().ckr));
    self->request_replacement();
  }
  co_return result;
}

member_snapshot member::snapshot() const {
  member_snapshot s;
  s.name = impl_->cfg.name;
  s.state = impl_->state;
  s.state_since = impl_->state_since;
  s.in_flight = impl_->worker ? impl_->worker->in_flight() : 0;
  s.p50_ms = impl_->latency.percentile_ms(0.50);
  s.p99_ms = impl_->latency.percentile_ms(0.99);
  s.requests = impl_->requests;
  s.errors = impl_->errors;
  s.worker_restarts = impl_->restarts;
  s.last_error = impl_->last_error;
  s.token = impl_->token;
  return s;
}

}  // namespace hsmb
