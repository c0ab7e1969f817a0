// Coroutines on the broker's io thread waiting for "something changed" (a member's state, the end
// of a re-read of the members' records), each until a deadline of its own: wake_all() resumes
// every one of them, and each then checks again whether what it waits for holds.
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
    timers_.push_back(&t);
    co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    std::erase(timers_, &t);
  }
  void wake_all() {
    for (auto* t : timers_) t->cancel();
    timers_.clear();  // each waiter resumes later, through the scheduler, and may wait again
  }

 private:
  std::vector<boost::asio::steady_timer*> timers_;
};

}  // namespace hsmb
