#include "broker/router.h"

#include <algorithm>

namespace hsmb {

double route_score(const route_candidate& c) {
  // A floor on latency keeps an idle member with no samples from looking infinitely fast.
  double latency = std::max(c.latency_ms, 0.05);
  return double(c.in_flight + 1) * latency / double(std::max<std::uint32_t>(c.weight, 1));
}

namespace {

std::size_t weighted_pick(const std::vector<route_candidate>& pool, std::mt19937& rng, std::size_t exclude) {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < pool.size(); ++i)
    if (i != exclude) total += std::max<std::uint32_t>(pool[i].weight, 1);
  std::uniform_int_distribution<std::uint64_t> dist(0, total - 1);
  std::uint64_t r = dist(rng);
  for (std::size_t i = 0; i < pool.size(); ++i) {
    if (i == exclude) continue;
    std::uint64_t w = std::max<std::uint32_t>(pool[i].weight, 1);
    if (r < w) return i;
    r -= w;
  }
  return pool.size() - 1;
}

void sort_by_score(std::vector<route_candidate>& v) {
  std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return route_score(a) < route_score(b); });
}

}  // namespace

std::vector<std::size_t> route_order(std::vector<route_candidate> candidates, std::mt19937& rng) {
  std::vector<route_candidate> healthy, unhealthy;
  for (auto& c : candidates) (c.healthy ? healthy : unhealthy).push_back(c);
  std::vector<std::size_t> order;
  if (healthy.size() >= 2) {
    std::size_t a = weighted_pick(healthy, rng, healthy.size());
    std::size_t b = weighted_pick(healthy, rng, a);
    std::size_t first = route_score(healthy[b]) < route_score(healthy[a]) ? b : a;
    order.push_back(healthy[first].index);
    healthy.erase(healthy.begin() + static_cast<std::ptrdiff_t>(first));
  }
  sort_by_score(healthy);
  sort_by_score(unhealthy);
  for (auto& c : healthy) order.push_back(c.index);
  for (auto& c : unhealthy) order.push_back(c.index);
  return order;
}

}  // namespace hsmb
