#include "broker/descriptor_budget.h"

#include <sys/resource.h>

namespace hsmb {
namespace {

std::size_t configured_connections(const config& cfg) {
  std::size_t n = 0;
  if (cfg.unix_listener) n += cfg.unix_listener->limits.max_connections;
  if (cfg.http_listener) n += cfg.http_listener->limits.max_connections;
  return n;
}

}  // namespace

std::size_t reserved_descriptors(std::size_t members) { return 64 + 8 * members; }

std::size_t descriptor_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 1024;
  if (r.rlim_cur < r.rlim_max) {
    rlimit raised{r.rlim_max, r.rlim_max};
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) r = raised;  // refused under SystemCallFilter=~@resources
  }
  return r.rlim_cur == RLIM_INFINITY ? std::size_t(1) << 20 : static_cast<std::size_t>(r.rlim_cur);
}

std::size_t connection_budget(const config& cfg, std::size_t limit) {
  auto reserved = reserved_descriptors(cfg.members.size());
  return limit > reserved ? limit - reserved : 0;
}

std::string check_descriptor_budget(const config& cfg, std::size_t limit) {
  auto wanted = configured_connections(cfg);
  auto budget = connection_budget(cfg, limit);
  if (wanted <= budget) return {};
  return "listen: the listeners' max_connections add up to " + std::to_string(wanted) + ", but with " +
         std::to_string(limit) + " file descriptors (RLIMIT_NOFILE) and " +
         std::to_string(reserved_descriptors(cfg.members.size())) + " kept for " + std::to_string(cfg.members.size()) +
         " member(s) the broker can hold " + std::to_string(budget) +
         " connections: raise the limit (LimitNOFILE= in the unit) or lower listen.*.max_connections";
}

}  // namespace hsmb
