#include "app/supervisor/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace hsmb::app {

void setup_supervisor_logging() {
  auto logger = spdlog::stderr_color_mt("hsm-supervisor");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ supervisor: %v");
  spdlog::set_default_logger(logger);
}

}  // namespace hsmb::app
