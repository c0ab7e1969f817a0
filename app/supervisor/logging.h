// hsm-supervisor's log: stderr, "2025-01-31T12:00:00.000 info supervisor: message" (the brokers
// log to the same stderr with "[gen N]" instead), or JSON lines with HSMB_LOG_FORMAT=json.
#pragma once

namespace hsmb::app {

void setup_supervisor_logging();

}  // namespace hsmb::app
