// A one-shot wake-up for a coroutine on an io thread. fire() resumes the waiter at
// once, on the firer's stack; a cancelled timer, the usual way to wake a coroutine, goes through
// the scheduler instead, and each such hop costs a pass of the event loop with its epoll_wait.
//
// Fire only from the top of a handler (an I/O completion, a timer), never from code that is in
// the middle of changing shared state: the waiter runs before fire() returns.
#pragma once

#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace hsmb {

class resume_slot {
 public:
  resume_slot() = default;
  resume_slot(const resume_slot&) = delete;
  resume_slot& operator=(const resume_slot&) = delete;

  // Returns at once if fired since the last reset(). One waiter at a time.
  boost::asio::awaitable<void> wait() {
    if (fired_) co_return;
    co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void()>(
        [this](auto handler) { waiter_type(std::move(handler)).swap(waiter_); }, boost::asio::use_awaitable);
  }

  void fire() {
    fired_ = true;
    waiter_type waiter;
    waiter.swap(waiter_);
    if (waiter) std::move(waiter)();
  }

  void reset() { fired_ = false; }

 private:
  // Moved by swap(): Boost 1.81's move assignment recurses without end.
  using waiter_type = boost::asio::any_completion_handler<void()>;
  bool fired_ = false;
  waiter_type waiter_;
};

}  // namespace hsmb
