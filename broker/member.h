// One HSM ("member"): owns its current worker, replaces it after any device-class failure,
// retries every probe interval while the HSM is down, and keeps the numbers operators see.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/config.h"
#include "broker/worker_client.h"

namespace hsmb {

enum class member_state { starting, serving, suspect, down, syncing };
std::string_view to_string(member_state s);

struct member_error_record {
  unsigned long ckr = 0;
  std::string message;
  std::chrono::system_clock::time_point at;
};

struct member_snapshot {
  std::string name;
  member_state state;
  std::chrono::system_clock::time_point state_since;
  std::size_t in_flight = 0;
  double p50_ms = 0, p99_ms = 0;
  std::uint64_t requests = 0, errors = 0, failovers = 0, hedges = 0, worker_restarts = 0;
  std::optional<member_error_record> last_error;
  std::optional<token_description> token;
};

struct member_timing {
  std::chrono::milliseconds call_timeout;
  std::chrono::milliseconds probe_interval;
};

class member {
 public:
  member(boost::asio::io_context& io, std::size_t index, const member_config& cfg, std::string worker_program,
         member_timing timing);
  ~member();

  std::size_t index() const { return index_; }
  const std::string& name() const;
  member_state state() const;
  member_snapshot snapshot() const;

  // Starts the supervision loop (first worker start included).
  void run();
  // Runs after every transition to serving (a fresh worker with a logged-in token).
  void on_serving(std::function<void(member&)> callback);
  // Waits until the member serves, fails, or `timeout` passes; true when serving.
  boost::asio::awaitable<bool> wait_serving(std::chrono::milliseconds timeout);

  // One operation on this member, bounded by min(call_timeout, budget), or by the budget alone for
  // operations slow by nature (key generation). A device-class failure replaces the worker; the
  // caller sees the error and may try elsewhere.
  enum class pace { normal, slow };
  boost::asio::awaitable<hsm_result<bytes>> call(wire::op op, byte_view payload, std::chrono::milliseconds budget,
                                                 pace p = pace::normal);

  void stop();

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
  std::size_t index_;
};

}  // namespace hsmb
