// hsm-supervisor's log: stderr, "2025-01-31T12:00:00.000 info supervisor: message" (the brokers
// log to the same stderr without the prefix).
#pragma once

namespace hsmb::app {

void setup_supervisor_logging();

}  // namespace hsmb::app
