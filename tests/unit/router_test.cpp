// Routing order: power of two choices among healthy members, weights, fallbacks last.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "broker/router.h"

using namespace hsmb;

TEST_CASE("a single candidate, and unhealthy members only as fallbacks") {
  auto seeded = seeded_random(1);
  auto& rng = *seeded;
  CHECK(route_order({{0, true}}, rng) == std::vector<std::size_t>{0});
  auto order = route_order({{0, false, 0, 1.0}, {1, true, 5, 9.0}}, rng);
  CHECK(order == std::vector<std::size_t>{1, 0});
  CHECK(route_order({}, rng).empty());
}

TEST_CASE("the busier or slower of two members gets less traffic") {
  auto seeded = seeded_random(7);
  auto& rng = *seeded;
  std::map<std::size_t, int> first;
  for (int i = 0; i < 2000; ++i) ++first[route_order({{0, true, 10, 1.0}, {1, true, 0, 1.0}}, rng)[0]];
  CHECK(first[1] > 1750);  // 11 : 1 odds
  first.clear();
  for (int i = 0; i < 2000; ++i) ++first[route_order({{0, true, 0, 8.0}, {1, true, 0, 1.0}, {2, true, 0, 1.0}}, rng)[0]];
  CHECK(first[0] < 300);  // 8 times slower: rarely picked, but never starved of samples
  CHECK(first[0] > 0);
  CHECK(first[1] > 700);
  CHECK(first[2] > 700);
}

TEST_CASE("weights shift traffic between equal members") {
  auto seeded = seeded_random(3);
  auto& rng = *seeded;
  std::map<std::size_t, int> first;
  for (int i = 0; i < 3000; ++i)
    ++first[route_order({{0, true, 0, 1.0, 1}, {1, true, 0, 1.0, 1}, {2, true, 0, 1.0, 4}}, rng)[0]];
  CHECK(first[2] > first[0] + 300);
  CHECK(first[2] > first[1] + 300);
}

TEST_CASE("every candidate appears once") {
  auto seeded = seeded_random(5);
  auto& rng = *seeded;
  auto order = route_order({{3, true}, {1, false}, {2, true}, {0, true}}, rng);
  std::sort(order.begin(), order.end());
  CHECK(order == std::vector<std::size_t>{0, 1, 2, 3});
}

TEST_CASE("near-equal members share the traffic: none starves on a small latency difference") {
  auto seeded = seeded_random(11);
  auto& rng = *seeded;
  std::map<std::size_t, int> first;
  for (int i = 0; i < 2000; ++i) ++first[route_order({{0, true, 0, 0.5}, {1, true, 0, 0.4}}, rng)[0]];
  CHECK(first[0] > 800);
  CHECK(first[1] > 800);
}

TEST_CASE("a latency from a handful of samples does not decide") {
  auto seeded = seeded_random(13);
  auto& rng = *seeded;
  std::map<std::size_t, int> first;
  route_candidate cold{0, true, 0, 9.0, 1, 2};  // two slow samples, e.g. right after start-up
  route_candidate warm{1, true, 0, 0.4, 1, 500};
  for (int i = 0; i < 2000; ++i) ++first[route_order({cold, warm}, rng)[0]];
  CHECK(first[0] > 800);
  CHECK(first[1] > 800);
}
