// A mutex for coroutines on one io_context: lock() suspends instead of blocking the thread.
// Waiters get it in the order they asked, and unlock() hands it straight to the next one, so a
// newcomer never overtakes them. Used to serialise key management (create, rotate, config, delete).
#pragma once

#include <deque>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace hsmb {

class async_mutex {
 public:
  class guard {
   public:
    explicit guard(async_mutex* m) : m_(m) {}
    guard(guard&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
    ~guard() {
      if (m_) m_->unlock();
    }

   private:
    async_mutex* m_;
  };

  boost::asio::awaitable<guard> lock() {
    if (!locked_) {
      locked_ = true;
      co_return guard(this);
    }
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, boost::asio::steady_timer::time_point::max());
    waiters_.push_back(&t);
    co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));  // woken by unlock
    co_return guard(this);
  }

 private:
  void unlock() {
    if (waiters_.empty()) {
      locked_ = false;
      return;
    }
    auto* next = waiters_.front();  // ownership passes straight to the next waiter
    waiters_.pop_front();
    next->cancel();
  }
  bool locked_ = false;
  std::deque<boost::asio::steady_timer*> waiters_;
};

}  // namespace hsmb
