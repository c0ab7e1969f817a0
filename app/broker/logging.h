// hsm-broker's log: stderr, "2025-01-31T12:00:00.000 info [gen 3] message" (the tag when run by
// hsm-supervisor), or JSON lines with HSMB_LOG_FORMAT=json; HSMB_LOG_LEVEL sets the level.
#pragma once

namespace hsmb::app {

void setup_broker_logging();

}  // namespace hsmb::app
