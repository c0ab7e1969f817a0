#include "common/random_source.h"

#include <random>

namespace hsmb {
namespace {

class mt_random final : public random_source {
 public:
  explicit mt_random(std::uint64_t seed) : engine_(seed) {}
  double uniform(double lo, double hi) override {
    if (!(hi > lo)) return lo;
    return std::uniform_real_distribution<double>(lo, hi)(engine_);
  }
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) override {
    if (hi <= lo) return lo;
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(engine_);
  }
  std::uint64_t token() override { return engine_(); }

 private:
  std::mt19937_64 engine_;
};

}  // namespace

std::unique_ptr<random_source> os_seeded_random() {
  std::random_device device;
  auto seed = (std::uint64_t(device()) << 32) | device();
  return std::make_unique<mt_random>(seed);
}

std::unique_ptr<random_source> seeded_random(std::uint64_t seed) { return std::make_unique<mt_random>(seed); }

}  // namespace hsmb
