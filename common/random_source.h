// The dice the broker's choices use (jitter, back-off, power of two choices, names), passed in
// so that tests can make those choices deterministic. Not for secrets: keys and nonces come
// from the HSMs, challenges from OpenSSL.
#pragma once

#include <cstdint>
#include <memory>

namespace hsmb {

class random_source {
 public:
  virtual ~random_source() = default;
  // Uniform in [lo, hi); lo when hi <= lo.
  virtual double uniform(double lo, double hi) = 0;
  // Uniform in [lo, hi], both included; lo when hi <= lo.
  virtual std::uint64_t between(std::uint64_t lo, std::uint64_t hi) = 0;
  // 64 random bits: names that must not collide with another process's.
  virtual std::uint64_t token() = 0;
};

// A Mersenne Twister seeded from the OS: what the broker runs with.
std::unique_ptr<random_source> os_seeded_random();
// The same generator with a fixed seed: a reproducible sequence.
std::unique_ptr<random_source> seeded_random(std::uint64_t seed);

}  // namespace hsmb
