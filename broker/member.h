// One HSM ("member"): owns its current worker, replaces it after any device-class failure,
// probes it while idle, tries a fresh worker every probe interval while down, recycles it by age,
// and keeps the numbers operators see.
//
// States: starting -> syncing -> serving <-> suspect -> down -> (a fresh worker starts) -> syncing
// -> serving.
// A member rejoins only after a fresh worker passed the known-answer check and the join hook
// (key catch-up) ran; a syncing member takes calls but no routed requests.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/config.h"
#include "broker/router.h"
#include "broker/worker_channel.h"
#include "common/latency_histogram.h"
#include "common/random_source.h"
#include "common/time_source.h"
#include "hsm_backends/capabilities.h"

namespace hsmb {

enum class member_state { starting, serving, suspect, down, syncing };
std::string_view to_string(member_state s);

struct member_error_record {
  std::string code;  // error_name(): "CKR_PIN_INCORRECT", "HSMB_CALL_TIMEOUT"
  std::string message;
  std::chrono::system_clock::time_point at;
};

struct member_snapshot {
  std::string name;
  member_state state;
  std::chrono::system_clock::time_point state_since;
  std::size_t in_flight = 0;
  double p50_ms = 0, p99_ms = 0;
  std::uint64_t requests = 0, errors = 0, failovers = 0, hedges = 0, worker_restarts = 0, worker_recycles = 0;
  std::uint64_t probes = 0;
  std::optional<member_error_record> last_error;
  std::optional<token_description> token;
};

struct member_timing {
  std::chrono::milliseconds call_timeout;
  std::chrono::milliseconds probe_interval;
  std::chrono::milliseconds worker_max_age;
  std::chrono::milliseconds idle_probe_interval{30'000};
  std::chrono::milliseconds max_backoff{30'000};
};

// Lets one member at a time recycle its worker.
struct recycle_gate {
  bool busy = false;
};

// What a member takes from outside: how to start a worker (production: an hsm-worker process),
// the clocks its decisions read and the dice its jitter uses. Tests pass fakes.
struct member_deps {
  std::function<std::unique_ptr<worker_channel>(const member_config&)> new_worker;
  std::shared_ptr<time_source> time;
  std::shared_ptr<random_source> random;
};

class member {
 public:
  member(boost::asio::io_context& io, std::size_t index, const member_config& cfg, member_timing timing,
         std::shared_ptr<recycle_gate> gate, member_deps deps);
  ~member();

  std::size_t index() const { return index_; }
  const std::string& name() const;
  member_state state() const;
  // Serving, or suspect (slow but answering): a member admin work (copies, key records) may use.
  bool usable() const { return state() == member_state::serving || state() == member_state::suspect; }
  member_snapshot snapshot() const;
  route_candidate candidate() const;
  // Whether this member's token offers every capability in `needed` (one operation's, say).
  bool offers(const capability_set& needed) const;
  // Whether this member's token offers what keys of `type` need (and the companion HMAC).
  bool supports(key_type type) const;
  // Whether keys of `type` can be copied to or from this member (wrap/unwrap under the cluster key).
  bool can_copy(key_type type) const;
  // How long a request waits for this member before a hedge goes elsewhere.
  std::chrono::milliseconds hedge_delay() const;

  // Starts supervision (first worker start included) and probing.
  void run();
  void stop();
  // Runs (and is awaited) in the syncing state before every transition to serving.
  // A hook answering false (it could not learn what the member holds) fails the join: the worker
  // is replaced and the member retried as if it had not started.
  void on_join(std::function<boost::asio::awaitable<bool>(member&)> hook);
  // Runs after every state change.
  void on_state_change(std::function<void()> callback);
  // True while a worker (re)start is pending or under way.
  bool restarting() const;
  // Serving or suspect, or down after `attempts` real attempts in a row (or a refused PIN) with
  // no new one under way: not starting, syncing or restarting.
  bool settled(int attempts = 1) const;
  // Waits while the member is starting or restarting its worker; true when serving.
  boost::asio::awaitable<bool> wait_serving(std::chrono::milliseconds timeout);

  // One operation on this member, bounded by min(call_timeout, budget), or by the budget alone for
  // operations slow by nature (key generation). A device-class failure replaces the worker; the
  // caller sees the error and may try elsewhere.
  enum class pace { normal, slow };
  boost::asio::awaitable<hsm_result<bytes>> call(wire::op op, byte_view payload, std::chrono::milliseconds budget,
                                                 pace p = pace::normal);

  // A worker for the caller alone (one session), ended when the caller drops it; its start is
  // bounded by min(call_timeout, budget). It leaves the member's own worker and state alone, but
  // a PIN it has refused stops the member's restarts, as a refusal to the member's worker does.
  // Why: a process that has never written to the token sees every object other processes
  // committed, which the member's own worker may not (broker/keys/name_claims.cpp).
  boost::asio::awaitable<hsm_result<std::unique_ptr<worker_channel>>> start_alone(std::chrono::milliseconds budget);

  // The latency of this member's calls of one operation, since the broker started (/metrics).
  const latency_histogram& latency_of(wire::op op) const;

  // Routing feedback: a request left this member after a failure; a hedge went elsewhere.
  void note_failover();
  void note_hedge();
  // Replace the worker now (or retry a down member now), unless a fresh one started after `since`.
  void reconnect(std::chrono::steady_clock::time_point since);

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
  std::size_t index_;
};

}  // namespace hsmb
