#include "app/broker/config_check.h"

#include <unistd.h>

#include <iostream>

#include "app/broker/listeners.h"
#include "broker/descriptor_budget.h"

namespace hsmb::app {

int check_config(const config& cfg, const std::string& worker_program) {
  for (std::size_t i = 0; i < cfg.members.size(); ++i)
    if (::access(cfg.members[i].module.c_str(), R_OK) != 0) {
      std::cerr << "hsm-broker: members[" << i << "].module: cannot read " << cfg.members[i].module << "\n";
      return 2;
    }
  if (::access(worker_program.c_str(), X_OK) != 0) {
    std::cerr << "hsm-broker: " << worker_program << " is missing: it must be installed next to hsm-broker\n";
    return 2;
  }
  try {
    load_tls(cfg);  // the files the broker loads at start: a bad one fails here too
  } catch (const config_error& e) {
    std::cerr << "hsm-broker: " << e.what() << "\n";
    return 2;
  }
  if (auto budget = check_descriptor_budget(cfg, descriptor_limit()); !budget.empty()) {
    std::cerr << "hsm-broker: " << budget << "\n";
    return 2;
  }
  std::cout << "configuration OK: " << cfg.members.size() << " member(s)\n";
  return 0;
}

}  // namespace hsmb::app
