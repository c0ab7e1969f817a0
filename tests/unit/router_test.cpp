// Routing order: power of two choices among healthy members, weights, fallbacks last.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "broker/router.h"

using namespace hsmb;

TEST_CASE("a single candidate, and unhealthy members only as fallbacks") {
  std::mt19937 rng(1);
  CHECK(route_order({{0, true}}, rng) == std::vector<std::size_t>{0});
  auto order = route_order({{0, false, 0, 1.0}, {1, true, 5, 9.0}}, rng);
  CHECK(order == std::vector<std::size_t>{1, 0});
  CHECK(route_order({}, rng).empty());
}

TEST_CASE("the busier or slower of two members gets less traffic") {
  std::mt19937 rng(7);
  std::map<std::size_t, int> first;
  for (int i = 0; i < 2000; ++i) ++first[route_order({{0, true, 10, 1.0}, {1, true, 0, 1.0}}, rng)[0]];
  CHECK(first[1] == 2000);  // with two candidates both are always compared
  first.clear();
  for (int i = 0; i < 2000; ++i) ++first[route_order({{0, true, 0, 8.0}, {1, true, 0, 1.0}, {2, true, 0, 1.0}}, rng)[0]];
  CHECK(first[0] == 0);  // two distinct samples: the slow one always meets a faster one
  CHECK(first[1] > 700);
  CHECK(first[2] > 700);
}

TEST_CASE("weights shift traffic between equal members") {
  std::mt19937 rng(3);
  std::map<std::size_t, int> first;
  for (int i = 0; i < 3000; ++i)
    ++first[route_order({{0, true, 0, 1.0, 1}, {1, true, 0, 1.0, 1}, {2, true, 0, 1.0, 4}}, rng)[0]];
  CHECK(first[2] > first[0] * 2);
  CHECK(first[2] > first[1] * 2);
}

TEST_CASE("every candidate appears once") {
  std::mt19937 rng(5);
  auto order = route_order({{3, true}, {1, false}, {2, true}, {0, true}}, rng);
  std::sort(order.begin(), order.end());
  CHECK(order == std::vector<std::size_t>{0, 1, 2, 3});
}
