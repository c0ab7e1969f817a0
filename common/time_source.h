// The clocks the broker's decisions read (deadlines, ages, back-off, hedge timing), passed in so
// that tests can move time on; production passes real_time. Timers stay real: code arms them
// for a duration worked out from now(), never for a time point of this clock.
#pragma once

#include <chrono>

namespace hsmb {

class time_source {
 public:
  virtual ~time_source() = default;
  virtual std::chrono::steady_clock::time_point now() const = 0;
  // Wall-clock time, for what operators read (since when, last error at).
  virtual std::chrono::system_clock::time_point system_now() const = 0;
};

class real_time final : public time_source {
 public:
  std::chrono::steady_clock::time_point now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point system_now() const override { return std::chrono::system_clock::now(); }
};

}  // namespace hsmb
