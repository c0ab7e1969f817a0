// The listening sockets the supervisor owns for the lifetime of the service and passes to every
// broker generation: taken from systemd socket activation, or created from `listen:`.
#pragma once

#include <string>
#include <vector>

#include "common/service_settings.h"
#include "common/service_env.h"

namespace hsmb::supervisor {

// name: "unix", "http", or systemd's FileDescriptorName.
using listen_socket = passed_socket;

// Sockets systemd passed to this process (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES); empty when
// none. Clears the variables, which are meant for this process only.
std::vector<listen_socket> sockets_from_systemd();

// Creates the sockets of `listen:`; throws std::runtime_error with a clear message.
std::vector<listen_socket> open_sockets(const service_settings& settings);

}  // namespace hsmb::supervisor
