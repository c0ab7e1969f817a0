// The fake worker channel (tests/lib/fake_worker.h): what worker_client does with a process,
// done in memory: calls matched to answers, deadlines, kill, the exit callback.
#include "tests/lib/fake_worker.h"

#include <map>
#include <optional>
#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/coro/resume_slot.h"
#include "hsm_backends/wire/messages.h"
#include "tests/lib/fake_token_state.h"

namespace hsmb::test {
namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {
pid_t next_pid = 100000;  // fake, but distinct per worker: logs and tests tell workers apart
}

struct fake_worker::impl : std::enable_shared_from_this<impl> {
  // As in worker_client: whoever removes a call from `calls` sets its result (or none: its
  // deadline passed) and fires `done`, exactly once.
  struct pending {
    resume_slot* done;
    std::optional<hsm_result<bytes>>* result;
  };

  impl(asio::io_context& io, std::shared_ptr<fake_token::state> token) : io(io), token(std::move(token)) {}

  asio::io_context& io;
  std::shared_ptr<fake_token::state> token;
  pid_t pid = next_pid++;
  bool dead = true;
  std::uint64_t next_id = 1;
  std::map<std::uint64_t, pending> calls;
  std::function<void(const hsm_error&)> exit_callback;
  process_view view;  // the records this process knows of (fake_token::per_process_views)

  hsm_error error(fault where, const std::string& why) const {
    return broker_fault(where, "fake worker on " + token->label + " " + why);
  }

  void spawn() {
    if (!dead) return;
    dead = false;
    ++token->alive;
  }

  std::optional<pending> take(std::uint64_t id) {
    auto it = calls.find(id);
    if (it == calls.end()) return std::nullopt;
    auto p = it->second;
    calls.erase(it);
    return p;
  }

  void deliver(std::uint64_t id, hsm_result<bytes> r) {
    if (auto p = take(id)) {
      *p->result = std::move(r);
      p->done->fire();
    }
  }

  void expire(std::uint64_t id) {
    if (auto p = take(id)) p->done->fire();
  }

  // Idempotent, like worker_client's: every call in flight fails (woken through the scheduler).
  void terminate(fault where, const std::string& why) {
    if (dead) return;
    dead = true;
    --token->alive;
    auto e = error(where, why);
    auto pending_calls = std::move(calls);
    calls.clear();
    for (auto& [id, p] : pending_calls) {
      *p.result = std::unexpected(e);
      asio::post(io, [done = p.done] { done->fire(); });
    }
    if (auto cb = std::move(exit_callback)) cb(e);
  }

  // The answer is worked out when it is sent: a slow put_metadata lands late, or never if the
  // worker dies first.
  static asio::awaitable<void> answer_later(std::shared_ptr<impl> self, std::uint64_t id, wire::op op, bytes payload,
                                            milliseconds delay) {
    if (delay.count() > 0) {
      asio::steady_timer t(self->io, delay);
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (self->dead || !self->calls.contains(id)) co_return;
    self->deliver(id, self->token->answer(op, payload, self->view));
  }

  void act(std::uint64_t id, wire::op op, bytes payload, const fake_step& s) {
    auto self = shared_from_this();
    // A record call starts with a find (C_FindObjectsInit re-indexes); a slow put commits late.
    if (op == wire::op::put_metadata || op == wire::op::list_metadata || op == wire::op::delete_metadata)
      token->index(view);
    switch (s.what) {
      case fake_step::kind::answer:
      case fake_step::kind::slow:
        asio::co_spawn(io, answer_later(self, id, op, std::move(payload), s.delay), asio::detached);
        break;
      case fake_step::kind::fail:
        asio::post(io, [self, id, e = s.error] { self->deliver(id, std::unexpected(e)); });
        break;
      case fake_step::kind::crash:
        asio::post(io, [self] { self->terminate(fault::worker_crashed, "exited or closed its socket (scripted crash)"); });
        break;
      case fake_step::kind::hang:
        token->hung.push_back([weak = weak_from_this(), id, op, payload = std::move(payload)] {
          auto self = weak.lock();
          if (self && !self->dead && self->calls.contains(id)) self->deliver(id, self->token->answer(op, payload, self->view));
        });
        break;
    }
  }
};

fake_worker::fake_worker(asio::io_context& io, std::shared_ptr<fake_token::state> token)
    : impl_(std::make_shared<impl>(io, std::move(token))) {}

fake_worker::~fake_worker() { impl_->terminate(fault::worker_unavailable, "was released"); }

asio::awaitable<hsm_result<token_description>> fake_worker::start(const member_settings&, milliseconds timeout) {
  auto self = impl_;
  self->spawn();
  bytes none;
  auto reply = co_await call(wire::op::hello, none, timeout);
  if (!reply) co_return std::unexpected(reply.error());
  auto token = wire::decode_token(*reply);
  if (!token) co_return std::unexpected(self->error(fault::worker_crashed, "sent a malformed hello reply"));
  ++self->token->started;
  co_return *token;
}

asio::awaitable<hsm_result<bytes>> fake_worker::call(wire::op op, byte_view payload, milliseconds kill_after,
                                                     milliseconds give_up_after) {
  auto self = impl_;
  if (self->dead) co_return std::unexpected(self->error(fault::worker_unavailable, "is not running"));
  ++self->token->calls[op];
  auto step = self->token->next(op);
  auto id = self->next_id++;
  resume_slot done;
  std::optional<hsm_result<bytes>> result;
  self->calls.emplace(id, impl::pending{&done, &result});
  bool gives_up_first = give_up_after < kill_after;
  auto wait = std::min(gives_up_first ? give_up_after : kill_after, milliseconds(std::chrono::hours(24)));
  asio::steady_timer deadline(self->io, wait);
  deadline.async_wait([self, id](boost::system::error_code ec) {
    if (!ec) self->expire(id);
  });
  self->act(id, op, bytes(payload.begin(), payload.end()), step);
  co_await done.wait();
  deadline.cancel();
  if (result) co_return std::move(*result);
  if (gives_up_first) co_return std::unexpected(self->error(fault::gave_up, "was still working when the caller gave up"));
  self->terminate(fault::call_timeout, "killed: a call passed its deadline");
  co_return std::unexpected(self->error(fault::call_timeout, "did not answer within " + std::to_string(kill_after.count()) + "ms"));
}

void fake_worker::kill(const std::string& why) { impl_->terminate(fault::worker_crashed, why); }
void fake_worker::on_exit(std::function<void(const hsm_error&)> callback) { impl_->exit_callback = std::move(callback); }
bool fake_worker::alive() const { return !impl_->dead; }
pid_t fake_worker::pid() const { return impl_->pid; }
std::size_t fake_worker::in_flight() const { return impl_->calls.size(); }

std::function<std::unique_ptr<worker_channel>(const member_config&)> fake_workers(
    asio::io_context& io, std::vector<std::shared_ptr<fake_token>> tokens) {
  return [&io, tokens = std::move(tokens)](const member_config& m) -> std::unique_ptr<worker_channel> {
    for (auto& t : tokens)
      if (t->label() == m.name) return std::make_unique<fake_worker>(io, t->shared());
    throw std::invalid_argument("no fake token for member " + m.name);
  };
}

}  // namespace hsmb::test
