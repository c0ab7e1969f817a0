// All members and the choice among them. A request goes to a member chosen by power of two
// choices among those serving that hold the key; it fails over to the next on a member failure,
// is hedged to a second member when the first is slow (operations safe to repeat), and when every
// member has failed, all are reconnected and the request is tried once more before a 503.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/error.h"
#include "broker/member.h"

namespace boost::asio {
class io_context;
}

namespace hsmb {

using member_filter = std::function<bool(const member&)>;

enum class repeatable { no, yes };  // yes: safe to send twice (hedging)

class member_pool {
 public:
  // Members on hsm-worker processes, with the real clocks and dice seeded from the OS.
  member_pool(boost::asio::io_context& io, const config& cfg, const std::string& worker_program);
  // Members on whatever `deps` gives (tests: fake workers, a clock they move, fixed dice).
  member_pool(boost::asio::io_context& io, const config& cfg, member_deps deps);

  void run();
  void stop();
  std::size_t size() const { return members_.size(); }
  member& at(std::size_t i) { return *members_[i]; }
  std::size_t serving_count() const;
  std::vector<member_snapshot> snapshots() const;

  boost::asio::awaitable<broker_result<bytes>> execute(wire::op op, byte_view payload, const member_filter& eligible,
                                                    repeatable r = repeatable::no);
  // Waits until at least one member serves, or until every member tried, bounded.
  boost::asio::awaitable<void> wait_any_started(std::chrono::milliseconds timeout);
  // Waits until `done()` holds, re-asked after every member state change, or until the deadline
  // (a time of time(), which is the real steady clock in production).
  boost::asio::awaitable<void> wait_until(const std::function<bool()>& done, std::chrono::steady_clock::time_point deadline);
  // Every member is serving (or suspect), or was found down by a real attempt: none is starting,
  // syncing or about to retry.
  bool settled(int attempts = 1) const;

  std::chrono::milliseconds request_timeout() const { return request_timeout_; }
  // The clock and the dice the members' and the pool's decisions use (for what runs on the pool
  // too: claim names, claim back-off).
  const time_source& time() const { return *time_; }
  random_source& random() { return *random_; }

 private:
  struct round_result;
  boost::asio::awaitable<round_result> run_round(wire::op op, byte_view payload, const member_filter& eligible,
                                                 repeatable r, std::chrono::steady_clock::time_point deadline);
  std::vector<member*> routing_order(const member_filter& eligible);
  std::vector<member*> reconnect_candidates(const std::vector<member*>& device_failed, const member_filter& eligible);
  boost::asio::awaitable<void> wait_until_settled(std::vector<member*> watched,
                                                  std::chrono::steady_clock::time_point deadline);
  void wake_waiters();

  boost::asio::io_context& io_;
  std::vector<std::unique_ptr<member>> members_;
  std::chrono::milliseconds request_timeout_;
  std::shared_ptr<time_source> time_;
  std::shared_ptr<random_source> random_;  // routing's power of two choices
  struct waiter_list;
  std::shared_ptr<waiter_list> waiters_;  // woken by any member's state change
};

// Maps a worker error that is not a member failure to the caller's error.
broker_error caller_error(const hsm_error& e);
// True when another member may succeed where this one failed.
bool try_elsewhere(const hsm_error& e);

}  // namespace hsmb
