// Listening sockets as plain fds (close-on-exec): a Unix socket file or a TCP address. The HTTP
// server accepts on them; hsm-supervisor makes them once and hands them to every broker.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace hsmb {

struct unix_listener_options {
  std::string path;
  mode_t mode = 0660;
  std::optional<std::string> group;  // chgrp the socket file to this group
};

// Both throw std::runtime_error with a clear message.
// A stale socket file (nobody accepting) is replaced; a live one is an error.
int open_unix_listener_fd(const unix_listener_options& options);
// "127.0.0.1:8200", "[::1]:8200", "localhost:8200"; port 0 picks a free port.
int open_tcp_listener_fd(const std::string& address);

}  // namespace hsmb
