// Requests by route and status code, and their duration by route (/metrics). Recording is a few
// relaxed atomic increments: no lock, no allocation on the request path.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "common/latency_histogram.h"

namespace hsmb::api {

class request_metrics {
 public:
  // The status codes counted one by one; any other is counted as "other".
  static constexpr std::array<unsigned, 16> codes = {200, 204, 400, 403, 404, 405, 408, 412,
                                                     413, 429, 431, 499, 500, 502, 503, 504};
  static constexpr std::size_t other_code = codes.size();

  // Routes 0..routes-1 as in the route table; index `routes` stands for requests no route took.
  explicit request_metrics(std::size_t routes);

  void record(std::size_t route, unsigned status, std::chrono::nanoseconds took);

  std::size_t routes() const { return routes_; }  // unmatched() is one more
  std::size_t unmatched() const { return routes_; }
  std::uint64_t count(std::size_t route, std::size_t code_slot) const {
    return slots_[route].by_code[code_slot].load(std::memory_order_relaxed);
  }
  const latency_histogram& duration(std::size_t route) const { return slots_[route].duration; }

 private:
  struct slot {
    std::array<std::atomic<std::uint64_t>, codes.size() + 1> by_code{};
    latency_histogram duration;
  };
  std::size_t routes_;
  std::unique_ptr<slot[]> slots_;
};

}  // namespace hsmb::api
