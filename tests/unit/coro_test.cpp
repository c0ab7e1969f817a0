// The coroutine primitives (common/coro/): async_mutex, wake_list, resume_slot.
#include <doctest/doctest.h>

#include <chrono>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "common/coro/async_mutex.h"
#include "common/coro/resume_slot.h"
#include "common/coro/wake_list.h"

using namespace hsmb;
using namespace std::chrono_literals;
namespace asio = boost::asio;

TEST_CASE("async_mutex: waiters get the lock in the order they asked, and a newcomer does not overtake them") {
  asio::io_context io;
  async_mutex mutex;
  resume_slot release;
  std::vector<int> order;
  auto holder = [&]() -> asio::awaitable<void> {
    auto held = co_await mutex.lock();
    order.push_back(0);
    co_await release.wait();
  };
  auto waiter = [&](int id) -> asio::awaitable<void> {
    auto held = co_await mutex.lock();
    order.push_back(id);
  };
  asio::co_spawn(io, holder(), asio::detached);
  for (int id = 1; id <= 3; ++id) asio::co_spawn(io, waiter(id), asio::detached);
  io.poll();
  CHECK(order == std::vector{0});
  release.fire();  // the holder ends: its guard hands the lock to waiter 1
  asio::co_spawn(io, waiter(4), asio::detached);  // asks before waiter 1 has run
  io.poll();
  CHECK(order == std::vector{0, 1, 2, 3, 4});
}

TEST_CASE("async_mutex: a free lock is taken without waiting, and released with its guard") {
  asio::io_context io;
  async_mutex mutex;
  int taken = 0;
  auto take = [&]() -> asio::awaitable<void> {
    { auto held = co_await mutex.lock(); ++taken; }
    { auto again = co_await mutex.lock(); ++taken; }
  };
  asio::co_spawn(io, take(), asio::detached);
  io.poll();
  CHECK(taken == 2);
}

TEST_CASE("wake_list: wake_all resumes every waiter, long before its deadline") {
  asio::io_context io;
  wake_list list;
  int woken = 0;
  auto waiter = [&](bool by_duration) -> asio::awaitable<void> {
    if (by_duration) co_await list.wait_for(1h);
    else co_await list.wait(std::chrono::steady_clock::now() + 1h);
    ++woken;
  };
  for (int i = 0; i < 3; ++i) asio::co_spawn(io, waiter(i % 2 == 0), asio::detached);
  io.poll();
  CHECK(woken == 0);
  list.wake_all();
  io.poll();
  CHECK(woken == 3);
}

TEST_CASE("wake_list: a waiter nobody wakes returns at its deadline; a wake with nobody waiting is not kept") {
  asio::io_context io;
  wake_list list;
  list.wake_all();
  bool woken = false;
  auto started = std::chrono::steady_clock::now();
  auto waiter = [&]() -> asio::awaitable<void> {
    co_await list.wait_for(15ms);
    woken = true;
  };
  asio::co_spawn(io, waiter(), asio::detached);
  io.poll();
  CHECK(!woken);
  io.run();  // ends when the waiter does
  CHECK(woken);
  CHECK(std::chrono::steady_clock::now() - started >= 15ms);
}

TEST_CASE("resume_slot: a fire before the wait is kept; the wait returns at once") {
  asio::io_context io;
  resume_slot slot;
  bool done = false;
  slot.fire();
  auto waiter = [&]() -> asio::awaitable<void> {
    co_await slot.wait();
    done = true;
  };
  asio::co_spawn(io, waiter(), asio::detached);
  io.poll();
  CHECK(done);
}

TEST_CASE("resume_slot: fire() resumes the waiter on the firer's stack, and reset() forgets a fire") {
  asio::io_context io;
  resume_slot slot;
  int resumed = 0;
  auto waiter = [&]() -> asio::awaitable<void> {
    co_await slot.wait();
    ++resumed;
    slot.reset();
    co_await slot.wait();
    ++resumed;
  };
  asio::co_spawn(io, waiter(), asio::detached);
  io.poll();
  CHECK(resumed == 0);
  slot.fire();
  CHECK(resumed == 1);  // before fire() returned: no pass of the event loop
  io.poll();
  CHECK(resumed == 1);  // the earlier fire was forgotten
  slot.fire();
  CHECK(resumed == 2);
}
