#include "app/broker/logging.h"

#include "common/log_setup.h"

namespace hsmb::app {

void setup_broker_logging() { logline::setup_logging("hsm-broker", ""); }

}  // namespace hsmb::app
