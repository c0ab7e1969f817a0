#include "api/metrics/request_metrics.h"

#include <algorithm>

namespace hsmb::api {

request_metrics::request_metrics(std::size_t routes) : routes_(routes), slots_(std::make_unique<slot[]>(routes + 1)) {}

void request_metrics::record(std::size_t route, unsigned status, std::chrono::nanoseconds took) {
  auto& s = slots_[std::min(route, routes_)];
  auto at = std::find(codes.begin(), codes.end(), status);
  s.by_code[static_cast<std::size_t>(at - codes.begin())].fetch_add(1, std::memory_order_relaxed);
  s.duration.record(took);
}

}  // namespace hsmb::api
