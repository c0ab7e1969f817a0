// All members and the choice among them: a request goes to a serving member that holds the key,
// and moves on to the next one when a member fails, until the request's deadline.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/api_error.h"
#include "broker/member.h"

namespace hsmb {

class member_pool {
 public:
  member_pool(boost::asio::io_context& io, const config& cfg, const std::string& worker_program);

  void run();
  void stop();
  std::size_t size() const { return members_.size(); }
  member& at(std::size_t i) { return *members_[i]; }
  std::size_t serving_count() const;
  std::vector<member_snapshot> snapshots() const;

  // Runs `op` on the first member (in routing order) among those `eligible` accepts; a device
  // failure or a missing object moves on to the next. Caller errors return at once.
  boost::asio::awaitable<api_result<bytes>> execute(wire::op op, byte_view payload,
                                                    const std::function<bool(const member&)>& eligible);
  // Waits until at least one member serves (or all have tried and failed once), bounded.
  boost::asio::awaitable<void> wait_any_started(std::chrono::milliseconds timeout);

  std::chrono::milliseconds request_timeout() const { return request_timeout_; }

 private:
  std::vector<member*> routing_order(const std::function<bool(const member&)>& eligible) const;

  std::vector<std::unique_ptr<member>> members_;
  std::chrono::milliseconds request_timeout_;
};

// Maps a worker error that is not a member failure to the caller's error.
api_error caller_error(const hsm_error& e);
// True when another member may succeed where this one failed.
bool try_elsewhere(const hsm_error& e);

}  // namespace hsmb
