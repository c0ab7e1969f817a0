// A latency histogram for Prometheus (`_bucket`, `_sum`, `_count`): fixed buckets, relaxed
// atomics, so recording on the request path takes no lock and allocates nothing.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace hsmb {

class latency_histogram {
 public:
  // Upper bounds in seconds (an HSM call takes from well under a millisecond to seconds).
  static constexpr std::array<double, 14> bounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,    0.25,  0.5,    1,     2.5,  5,     10};

  void record(std::chrono::nanoseconds d) {
    auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
    std::size_t i = 0;
    while (i < bounds.size() && double(us) > bounds[i] * 1e6) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);  // i == bounds.size(): only +Inf
    sum_us_.fetch_add(us, std::memory_order_relaxed);
  }

  // Samples in bucket i alone (not cumulative); i == bounds.size() is above the last bound.
  std::uint64_t bucket(std::size_t i) const { return counts_[i].load(std::memory_order_relaxed); }
  double sum_seconds() const { return double(sum_us_.load(std::memory_order_relaxed)) / 1e6; }
  std::uint64_t count() const {
    std::uint64_t n = 0;
    for (auto& c : counts_) n += c.load(std::memory_order_relaxed);
    return n;
  }

 private:
  std::array<std::atomic<std::uint64_t>, bounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_us_{0};
};

}  // namespace hsmb
