// The broker's listening sockets: those its service manager passed, else the configured ones.
#pragma once

#include "api/http/server.h"
#include "broker/config.h"

namespace hsmb::app {

// Throws std::runtime_error with a clear message.
void open_listeners(api::server& server, const config& cfg);

}  // namespace hsmb::app
