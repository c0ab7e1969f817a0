// A member_pool on fake workers (tests/lib/fake_worker.h), with a clock the test moves on and
// dice it fixes, and ways to run the io_context until something holds. For tests of the member
// layer and of what runs on it, without processes or HSMs.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include "broker/member_pool.h"
#include "tests/lib/fake_worker.h"
#include "tests/lib/offset_time.h"
#include "tests/lib/scripted_random.h"

namespace hsmb::test {

// Members hsm0, hsm1, ... with timings for tests: probes every 50 ms (back-offs of 5 ms with the
// dice at the bottom), call deadline 500 ms, request deadline 1 s; idle probes and recycling at
// an hour, so they happen only when the test moves the clock on.
config fake_config(std::size_t members);

class fake_pool {
 public:
  explicit fake_pool(std::size_t members, const std::function<void(config&)>& adjust = {});
  // A second broker's pool on `neighbour`'s tokens, io_context, clock and dice (same members).
  struct beside {
    fake_pool& neighbour;
  };
  explicit fake_pool(beside b);
  ~fake_pool();  // stops the members

 private:
  std::shared_ptr<boost::asio::io_context> io_;

 public:
  boost::asio::io_context& io;
  std::shared_ptr<offset_time> time = std::make_shared<offset_time>();
  std::shared_ptr<scripted_random> random = std::make_shared<scripted_random>(0.0);
  config cfg;

  member_pool& pool() { return *pool_; }
  member& at(std::size_t i) { return pool_->at(i); }
  fake_token& token(std::size_t i) { return *tokens_.at(i); }
  fake_token& token(const std::string& label);

  // Runs the members (set join hooks and scripts first).
  void start() { pool_->run(); }
  // Runs the io_context until `done()` holds; false if it does not within `limit` of real time.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(2));
  // Runs the io_context for `d` of real time: for checks that something does not happen.
  void run_for(std::chrono::milliseconds d);
  bool all_serving() const;

  // Runs a coroutine to its end (within `limit` of real time) and returns its result.
  template <class T>
  T await(boost::asio::awaitable<T> work, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
    std::optional<T> out;
    boost::asio::co_spawn(io, std::move(work), [&](std::exception_ptr e, T v) {
      if (e) std::rethrow_exception(e);
      out.emplace(std::move(v));
    });
    REQUIRE(run_until([&] { return out.has_value(); }, limit));
    return std::move(*out);
  }

 private:
  std::vector<std::shared_ptr<fake_token>> tokens_;
  std::unique_ptr<member_pool> pool_;
};

}  // namespace hsmb::test
