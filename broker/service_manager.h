// The broker's side of its service manager (hsm-supervisor or systemd, same protocol): listening
// sockets passed in with LISTEN_FDS, and sd_notify heartbeats and status while it runs.
#pragma once

#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace hsmb {

class member_pool;

// Listening fds passed by the service manager (LISTEN_PID is ours, LISTEN_FDS counts them from
// fd 3); empty when none. Clears the variables so no child inherits them.
std::vector<int> inherited_listeners();

// "STATUS=serving: 1 of 2 members": what the service manager shows.
std::string status_line(const member_pool& pool);

// With WATCHDOG_USEC set (and WATCHDOG_PID ours or unset): sends WATCHDOG=1 three times per
// period from the io thread (a stuck io thread stops them), with STATUS when it changed.
void start_heartbeat(boost::asio::io_context& io, member_pool& pool);

}  // namespace hsmb
