// Merging per-thread latency samples into percentiles; see latency.h.
#include "bench/latency.h"

#include <algorithm>
#include <cmath>

namespace hsmb::bench {
namespace {

std::vector<std::int64_t> merged(std::span<const latency_recorder> recorders) {
  std::size_t total = 0;
  for (const auto& r : recorders) total += r.samples().size();
  std::vector<std::int64_t> all;
  all.reserve(total);
  for (const auto& r : recorders) all.insert(all.end(), r.samples().begin(), r.samples().end());
  return all;
}

// Nearest rank: the smallest sample with at least fraction `q` of all samples at or below it.
double percentile_ms(const std::vector<std::int64_t>& sorted, double q) {
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  std::size_t index = std::clamp<std::size_t>(rank, 1, sorted.size()) - 1;
  return static_cast<double>(sorted[index]) / 1e6;
}

}  // namespace

latency_summary summarize(std::span<const latency_recorder> recorders) {
  auto all = merged(recorders);
  if (all.empty()) return {};
  std::ranges::sort(all);
  return {all.size(), percentile_ms(all, 0.50), percentile_ms(all, 0.90), percentile_ms(all, 0.99),
          static_cast<double>(all.back()) / 1e6};
}

}  // namespace hsmb::bench
