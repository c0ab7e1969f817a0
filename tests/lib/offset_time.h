// A time_source for tests: real time plus an offset the test moves forward. Deadlines and timers
// run as in production; skip() jumps over what would take too long to wait for (a worker's age,
// a probe interval since the last attempt).
#pragma once

#include "common/time_source.h"

namespace hsmb::test {

class offset_time final : public time_source {
 public:
  std::chrono::steady_clock::time_point now() const override { return std::chrono::steady_clock::now() + offset_; }
  std::chrono::system_clock::time_point system_now() const override {
    return std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(offset_);
  }
  void skip(std::chrono::steady_clock::duration d) { offset_ += d; }

 private:
  std::chrono::steady_clock::duration offset_{};
};

}  // namespace hsmb::test
