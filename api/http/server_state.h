// Internals shared by the HTTP server's translation units: the state behind hsmb::api::server,
// the per-connection record it tracks, and the socket set-up helpers. Includes Asio: not for use
// outside api/http.
#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include "api/http/server.h"

namespace hsmb::api {

namespace asio = boost::asio;
// One socket type for Unix and TCP connections alike: the family is a run-time property.
using stream_protocol = asio::generic::stream_protocol;
using stream_acceptor = asio::basic_socket_acceptor<stream_protocol>;

// What the server knows about a live connection: enough to close it when draining.
struct connection {
  explicit connection(stream_protocol::socket s) : socket(std::move(s)) {}
  virtual ~connection() = default;
  // Draining: an idle connection may still carry a request already on its way (answered with
  // "Connection: close"); it is closed once it stays idle for the drain grace.
  virtual void drain_idle() = 0;
  stream_protocol::socket socket;
  bool idle = false;  // waiting for the first byte of a next request, nothing buffered
};

// How long a draining server keeps an idle keep-alive connection open for a request in flight.
inline constexpr std::chrono::milliseconds drain_grace{500};

// Everything the listener and session coroutines share; kept alive by them (shared_ptr), so the
// server object may go away before the io_context has finished with them.
struct server_state : std::enable_shared_from_this<server_state> {
  server_state(asio::io_context& io, request_handler handler, server_limits limits);

  void start(stream_acceptor acceptor, std::string name);
  void release_held();
  void drain(std::function<void()> callback);
  void stop();  // server destroyed: close everything without ceremony
  void add(connection* c) { connections.insert(c); }
  void remove(connection* c);
  void notify_if_drained();

  asio::io_context& io;
  request_handler handler;
  server_limits limits;
  std::list<stream_acceptor> acceptors;  // list: accept loops hold references
  std::uint16_t tcp_port = 0;
  std::unordered_set<connection*> connections;
  bool draining = false;
  bool stopped = false;
  bool holding = false;  // listeners are bound but not accepting yet (see server::hold_accepting)
  std::vector<std::pair<stream_acceptor*, std::string>> held;
  std::function<void()> on_drained;
};

// Runs one accepted connection to its end (session.cpp).
void start_session(std::shared_ptr<server_state> state, stream_protocol::socket socket);

// Listening sockets (listener.cpp); each throws std::runtime_error with a clear message.
stream_acceptor open_unix_acceptor(asio::io_context& io, const unix_listener_options& options);
stream_acceptor open_tcp_acceptor(asio::io_context& io, const std::string& address);
stream_acceptor adopt_acceptor(asio::io_context& io, int fd);
// "unix:/run/x.sock", "tcp:127.0.0.1:8200": for logs.
std::string describe(const stream_acceptor& acceptor);
// Port of a TCP acceptor, 0 for other families.
std::uint16_t port_of(const stream_acceptor& acceptor);

}  // namespace hsmb::api
