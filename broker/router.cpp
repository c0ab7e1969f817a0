#include "broker/router.h"

#include <algorithm>

namespace hsmb {

double route_score(const route_candidate& c) {
  // A floor on latency keeps an idle member with no samples from looking infinitely fast.
  double latency = std::max(c.latency_ms, 0.05);
  return double(c.in_flight + 1) * latency / double(std::max<std::uint32_t>(c.weight, 1));
}

namespace {

// Below this many recent samples a latency says little (one slow key generation, one cold cache):
// such a pair is compared on in-flight requests and weight alone.
constexpr std::size_t min_samples = 16;

// Of the two sampled members, each is picked with probability inversely proportional to its
// score: the better one gets most of the traffic, but the other is never starved of the samples
// that would show it has become fast again.
bool pick_second(const route_candidate& first, const route_candidate& second, random_source& random) {
  route_candidate a = first, b = second;
  if (a.samples < min_samples || b.samples < min_samples) a.latency_ms = b.latency_ms = 1.0;
  double sa = route_score(a), sb = route_score(b);
  return random.uniform(0.0, 1.0) < sa / (sa + sb);
}

std::size_t weighted_pick(const std::vector<route_candidate>& pool, random_source& random, std::size_t exclude) {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < pool.size(); ++i)
    if (i != exclude) total += std::max<std::uint32_t>(pool[i].weight, 1);
  std::uint64_t r = random.between(0, total - 1);
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

std::vector<std::size_t> route_order(std::vector<route_candidate> candidates, random_source& random) {
  std::vector<route_candidate> healthy, unhealthy;
  for (auto& c : candidates) (c.healthy ? healthy : unhealthy).push_back(c);
  std::vector<std::size_t> order;
  if (healthy.size() >= 2) {
    std::size_t a = weighted_pick(healthy, random, healthy.size());
    std::size_t b = weighted_pick(healthy, random, a);
    std::size_t first = pick_second(healthy[a], healthy[b], random) ? b : a;
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
