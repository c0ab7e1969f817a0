#include "app/broker/logging.h"

#include <cstdlib>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace hsmb::app {

void setup_broker_logging() {
  auto logger = spdlog::stderr_color_mt("hsm-broker");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  if (const char* level = std::getenv("HSMB_LOG_LEVEL")) spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace hsmb::app
