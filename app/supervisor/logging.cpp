#include "app/supervisor/logging.h"

#include "common/log_setup.h"

namespace hsmb::app {

void setup_supervisor_logging() { logline::setup_logging("hsm-supervisor", "supervisor: "); }

}  // namespace hsmb::app
