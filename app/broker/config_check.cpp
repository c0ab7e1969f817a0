#include "app/broker/config_check.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "app/broker/listeners.h"
#include "broker/descriptor_budget.h"

namespace hsmb::app {

int check_config(const config& cfg, const std::string& worker_program) {
  for (std::size_t i = 0; i < cfg.members.size(); ++i)
    if (::access(cfg.members[i].module.c_str(), R_OK) != 0) {
      spdlog::error("members[{}].module: cannot read {}", i, cfg.members[i].module);
      return 2;
    }
  if (::access(worker_program.c_str(), X_OK) != 0) {
    spdlog::error("{} is missing: it must be installed next to hsm-broker", worker_program);
    return 2;
  }
  try {
    load_tls(cfg);  // the files the broker loads at start: a bad one fails here too
  } catch (const config_error& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
  if (auto budget = check_descriptor_budget(cfg, descriptor_limit()); !budget.empty()) {
    spdlog::error("{}", budget);
    return 2;
  }
  spdlog::info("configuration OK: {} member(s)", cfg.members.size());
  return 0;
}

}  // namespace hsmb::app
