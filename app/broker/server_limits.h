// The HTTP server's limits from the configuration and the descriptors this process may open.
#pragma once

#include "api/http/server.h"
#include "broker/config.h"

namespace hsmb::app {

// Warns when the configured caps do not fit RLIMIT_NOFILE (connections beyond it are refused);
// throws std::runtime_error when no descriptor is left for connections at all.
api::server_limits server_limits_of(const config& cfg);

}  // namespace hsmb::app
