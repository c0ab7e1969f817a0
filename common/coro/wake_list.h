// Coroutines on one io thread waiting for "something changed" (a member's state, the end of a
// re-read of the members' records, a worker to replace), each until a deadline of its own:
// wake_all() resumes every one of them, and each then checks again whether what it waits for
// holds. A wake_all() with nobody waiting is not remembered: check the condition before waiting.
#pragma once

#include <algorithm>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace hsmb {

class wake_list {
 public:
  // Returns at wake_all() or at `deadline`, whichever comes first.
  boost::asio::awaitable<void> wait(boost::asio::steady_timer::time_point deadline) {
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, deadline);
    co_await park(t);
  }
  // The same, `timeout` from now: for deadlines kept on a clock other than the timer's.
  boost::asio::awaitable<void> wait_for(boost::asio::steady_timer::duration timeout) {
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, timeout);
    co_await park(t);
  }
  void wake_all() {
    for (auto* t : timers_) t->cancel();
    timers_.clear();  // each waiter resumes later, through the scheduler, and may wait again
  }

 private:
  boost::asio::awaitable<void> park(boost::asio::steady_timer& t) {
    timers_.push_back(&t);
    co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    std::erase(timers_, &t);
  }
  std::vector<boost::asio::steady_timer*> timers_;
};

}  // namespace hsmb
