// The closed-loop load driver: one thread per caller, each sending its next call only once the
// previous one answered, after an unrecorded warm-up, for a duration or a total count of calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bench/cpu_usage.h"
#include "bench/latency.h"

namespace hsmb::bench {

// One call of the measured operation: nothing when it succeeded, else what went wrong.
using call_fn = std::function<std::optional<std::string>()>;

struct run_limits {
  std::chrono::milliseconds duration = std::chrono::seconds(10);
  std::optional<std::uint64_t> count;  // when set: this many calls, all threads together
  std::chrono::milliseconds warm_up = std::chrono::milliseconds(500);
};

struct run_result {
  latency_summary latency;   // successful measured calls only
  double seconds = 0;        // from the end of the warm-up to the last measured answer
  std::uint64_t errors = 0;  // failed calls, warm-up included
  std::string first_error;
  // CPU seconds each watched process used while the calls were measured (negative: unknown).
  std::vector<double> cpu_seconds;
  double ops_per_s() const { return seconds > 0 ? static_cast<double>(latency.count) / seconds : 0; }
};

// Runs calls[i] on thread i until the limits are reached, reading the CPU time of `watched`
// (this process included, if it is listed) when measuring starts and ends.
run_result run_closed_loop(std::vector<call_fn>& calls, const run_limits& limits,
                           const std::vector<watched_process>& watched = {});

}  // namespace hsmb::bench
