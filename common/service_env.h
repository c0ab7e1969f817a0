// What a service manager (systemd, or hsm-supervisor for the broker) passes in the environment:
// listening sockets (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES) and a watchdog period
// (WATCHDOG_USEC, WATCHDOG_PID). Each call takes the variables out, so no child inherits them.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace hsmb {

struct passed_socket {
  int fd = -1;
  std::string name;  // the LISTEN_FDNAMES entry; empty when none was given
};

// The sockets passed to this process (fds 3..), empty when none (or when meant for another pid).
std::vector<passed_socket> take_listen_fds();

// The other side, in a child between fork and exec: moves `sockets` to fds 3.., closes every
// other fd from 3 up, and sets LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (when there are any).
void give_listen_fds(const std::vector<passed_socket>& sockets);

// The watchdog period meant for this process, if any.
std::optional<std::chrono::microseconds> take_watchdog_period();

}  // namespace hsmb
