// A random_source for tests: every draw lands at one chosen point of its range (0: the bottom,
// 1: the top), and every uniform() draw is recorded, so a test can see the ranges the code
// asked for (a back-off's ceiling, say).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/random_source.h"

namespace hsmb::test {

class scripted_random final : public random_source {
 public:
  explicit scripted_random(double at = 0.0) : at_(at) {}
  void set(double at) { at_ = at; }

  struct draw {
    double lo, hi;
  };
  const std::vector<draw>& draws() const { return draws_; }

  double uniform(double lo, double hi) override {
    draws_.push_back({lo, hi});
    return hi > lo ? lo + at_ * (hi - lo) : lo;
  }
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) override {
    if (hi <= lo) return lo;
    auto span = double(hi - lo) + 1;
    return lo + std::min(hi - lo, static_cast<std::uint64_t>(std::floor(at_ * span)));
  }
  std::uint64_t token() override { return ++tokens_; }

 private:
  double at_;
  std::vector<draw> draws_;
  std::uint64_t tokens_ = 0;
};

}  // namespace hsmb::test
