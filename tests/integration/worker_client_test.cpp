// The broker's end of a worker (broker/worker_client): deadlines of calls to a real hsm-worker
// whose token the fault-injection module hangs. One timer watches all of a worker's calls, so
// these tests pin down what it must do: give up, kill, and wake a sooner deadline.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "broker/typed_call.h"
#include "broker/worker_client.h"
#include "tests/lib/fault_hsm.h"

using namespace hsmb;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto wait_limit = 10s;  // bound on every run of the io_context here
using random_result = hsm_result<wire::secret_payload>;

// Runs the io_context until `a` finishes; fails the test if that takes longer than wait_limit.
template <class T>
T run(asio::io_context& io, asio::awaitable<T> a) {
  std::optional<T> out;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T value) {
    failure = e;
    if (!e) out = std::move(value);
  });
  auto end = clock_type::now() + wait_limit;
  while (!out && !failure && clock_type::now() < end) io.run_one_for(100ms);
  if (failure) std::rethrow_exception(failure);
  REQUIRE_MESSAGE(out.has_value(), "the call did not finish within the test's wait limit");
  return std::move(*out);
}

struct started_worker {
  test::fault_hsm hsm;
  asio::io_context io;
  worker_client worker;
  int exits = 0;

  started_worker() : worker(io, launch(hsm)) {
    worker.on_exit([this](const hsm_error&) { ++exits; });
    member_settings s;
    s.module = test::fault_hsm::module_path();
    s.token_label = hsm.label();
    s.pin = secure_string(hsm.token().pin().begin(), hsm.token().pin().end());
    s.sessions = 2;
    auto token = run(io, worker.start(s, 20s));
    REQUIRE_MESSAGE(token.has_value(), (token ? "" : token.error().message));
  }

  static worker_launch launch(const test::fault_hsm& hsm) {
    worker_launch l{HSM_WORKER_PATH, {}, "test"};
    for (auto& [k, v] : hsm.environment()) l.env[k] = v;
    return l;
  }

  // Random bytes: an op that reaches the token, so a hung token holds it.
  asio::awaitable<random_result> random(std::chrono::milliseconds kill_after,
                                       std::chrono::milliseconds give_up_after = std::chrono::milliseconds::max()) {
    wire::random_request request{16};
    co_return co_await typed_call<wire::op::random>(worker, request, kill_after, give_up_after);
  }
};

std::optional<fault> fault_of(const random_result& r) { return r ? std::nullopt : std::optional(r.error().where); }

}  // namespace

TEST_CASE("a call whose request runs out of time gives up; the worker lives and serves the next call") {
  started_worker w;
  w.hsm.hang();
  auto started = clock_type::now();
  auto r = run(w.io, w.random(20s, 300ms));
  auto took = clock_type::now() - started;
  CHECK(fault_of(r) == fault::gave_up);
  CHECK(took >= 300ms);
  CHECK(took < 3s);
  CHECK(w.worker.alive());
  CHECK(w.exits == 0);
  w.hsm.up();
  // The late answer to the abandoned call is dropped; this call gets its own.
  auto next = run(w.io, w.random(20s));
  REQUIRE_MESSAGE(next.has_value(), (next ? "" : next.error().message));
  CHECK(next->value.size() == 16);
  CHECK(w.worker.alive());
}

TEST_CASE("a hung call is killed at its deadline, and the other calls in flight fail with it") {
  started_worker w;
  w.hsm.hang();
  auto both = [&]() -> asio::awaitable<std::pair<random_result, random_result>> {
    auto other = std::make_shared<std::optional<random_result>>();
    asio::co_spawn(w.io, w.random(20s), [other](std::exception_ptr, random_result r) { *other = std::move(r); });
    auto first = co_await w.random(400ms);
    while (!*other) co_await asio::post(w.io, asio::use_awaitable);  // it fails through the scheduler
    co_return std::pair{std::move(first), std::move(**other)};
  };
  auto [first, other] = run(w.io, both());
  CHECK(fault_of(first) == fault::call_timeout);
  CHECK(fault_of(other) == fault::call_timeout);  // the worker's end fails every call in flight
  CHECK_FALSE(w.worker.alive());
  CHECK(w.exits == 1);
}

TEST_CASE("a call with a sooner deadline than those in flight is not held to theirs") {
  started_worker w;
  w.hsm.hang();
  auto later = [&]() -> asio::awaitable<random_result> {
    // The first call's deadline, 20 s away, arms the worker's one timer; the second must re-arm it.
    asio::co_spawn(w.io, w.random(20s), asio::detached);
    co_return co_await w.random(20s, 200ms);
  };
  auto started = clock_type::now();
  auto r = run(w.io, later());
  CHECK(fault_of(r) == fault::gave_up);
  CHECK(clock_type::now() - started < 3s);
  CHECK(w.worker.alive());
  w.hsm.up();
}
