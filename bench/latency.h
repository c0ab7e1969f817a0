// Latency recording for hsm-bench: each load thread records into a recorder of its own (no
// sharing on the hot path); after the run the recorders are merged into percentiles.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

namespace hsmb::bench {

class latency_recorder {
 public:
  void record(std::chrono::nanoseconds d) { samples_.push_back(d.count()); }
  const std::vector<std::int64_t>& samples() const { return samples_; }

 private:
  std::vector<std::int64_t> samples_;  // nanoseconds
};

struct latency_summary {
  std::uint64_t count = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
};

// All threads' samples together; nearest-rank percentiles.
latency_summary summarize(std::span<const latency_recorder> recorders);

}  // namespace hsmb::bench
