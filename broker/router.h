// Chooses the order in which a request tries members: power of two choices among the healthy
// ones, scored by outstanding requests and recent latency, weighted; then the rest as fallbacks.
#pragma once

#include <cstdint>
#include <vector>

#include "common/random_source.h"

namespace hsmb {

struct route_candidate {
  std::size_t index = 0;    // member index
  bool healthy = true;      // serving (not suspect)
  std::size_t in_flight = 0;
  double latency_ms = 0;    // recent typical latency (p50)
  std::uint32_t weight = 1;
  std::size_t samples = 1000;  // recent latency samples behind latency_ms
};

// Lower is better: the expected wait behind what is already queued, per unit of weight.
double route_score(const route_candidate& c);

// The first entry is the power-of-two-choices pick among healthy candidates: two weighted random
// samples, then one of them with probability inversely proportional to its score. The remaining
// healthy ones follow by score, then the unhealthy ones by score.
std::vector<std::size_t> route_order(std::vector<route_candidate> candidates, random_source& random);

}  // namespace hsmb
