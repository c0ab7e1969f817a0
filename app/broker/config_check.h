// `hsm-broker --check`: what a configuration needs beyond parsing (readable modules, hsm-worker
// installed, descriptors for the connection caps). hsm-supervisor runs it on SIGHUP.
#pragma once

#include <string>

#include "broker/config.h"

namespace hsmb::app {

// Logs the first problem (exit code 2), or "configuration OK" (0), as the broker logs (stderr).
int check_config(const config& cfg, const std::string& worker_program);

}  // namespace hsmb::app
