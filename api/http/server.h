// HTTP/1.1 server for the broker's API on Unix sockets and TCP: a listener per socket, a session
// per connection (read, handle, write, repeat), keep-alive, bounded sizes, graceful drain.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "api/http/request.h"
#include "common/listen_socket.h"

namespace boost::asio {
class io_context;
}

namespace hsmb::api {

class tls_context;

using request_handler = std::function<boost::asio::awaitable<response>(const request&)>;

// Connections one listener takes, and one peer within it (a uid on a Unix socket, an address on
// TCP); further ones are accepted and closed at once. Past three quarters of max_connections,
// idle keep-alive connections of that listener get pressure_idle_timeout instead of idle_timeout.
struct listener_limits {
  std::size_t max_connections = 1024;
  std::size_t max_connections_per_peer = 256;
};

struct server_limits {
  std::size_t max_body = 4u << 20;        // larger bodies get 413
  std::size_t max_header = 16u << 10;     // larger headers get 431 and the connection closes
  std::size_t max_connections = 4096;     // all listeners together (the descriptors there are for them)
  listener_limits unix_listener, tcp_listener;
  // TCP: Host values accepted besides the listener's own address, localhost and 127.0.0.1 / [::1]
  // (a page whose name resolves to 127.0.0.1, DNS rebinding, sends its own name: 403).
  std::vector<std::string> allowed_hosts;
  // A request with an Origin header (sent by browsers) not in this list gets 403 (CSRF).
  std::vector<std::string> allowed_origins;
  std::chrono::seconds pressure_idle_timeout{2};
  std::chrono::seconds idle_timeout{60};  // keep-alive connection with no request
  std::chrono::seconds io_timeout{30};    // reading one request / writing one response
};

// Listening sockets are made by common/listen_socket.h (also for hsm-supervisor).
using hsmb::unix_listener_options;

class server {
 public:
  server(boost::asio::io_context& io, request_handler handler, server_limits limits = {});
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Start-up calls: they throw std::runtime_error with a clear message on failure.
  // A stale socket file (nobody accepting) is replaced; a live one is an error.
  void listen_unix(const unix_listener_options& options);
  // "127.0.0.1:8200", "[::1]:8200"; port 0 picks a free port (see tcp_port()).
  void listen_tcp(const std::string& address);
  // A listening socket inherited from a supervisor or systemd (family read from the fd).
  void adopt_listener(int fd);
  // TCP listeners added after this serve TLS with `context` (api/http/tls_context.h); Unix
  // sockets stay plain.
  void use_tls(std::shared_ptr<const tls_context> context);

  // Listeners added after hold_accepting() are bound but do not accept until start_accepting():
  // connections wait in the kernel's backlog (or go to another process on a shared socket, such
  // as the previous broker generation) instead of reaching a broker that cannot serve yet.
  void hold_accepting();
  void start_accepting();

  // Port of the first TCP listener, 0 when there is none.
  std::uint16_t tcp_port() const;

  // Stop accepting; close idle connections; busy ones finish the request in hand and answer it
  // with "Connection: close". `on_drained` runs (on the io_context) once no connection is left.
  void drain(std::function<void()> on_drained);

  std::size_t open_connections() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace hsmb::api
