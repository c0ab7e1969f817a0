// Internals shared by the HTTP server's translation units: the state behind hsmb::api::server,
// the per-connection record it tracks, and the socket set-up helpers. Includes Asio: not for use
// outside api/http.
#pragma once

#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <optional>
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

// Who is connecting: SO_PEERCRED on a Unix socket (the caller's identity; none on TCP), and what
// the per-peer limit counts by: "uid 1000", or the remote address.
struct connecting_peer {
  std::optional<peer_identity> identity;
  std::string key;
  std::string address = "unix";  // request.remote_address: "127.0.0.1:51234", "[::1]:51234", "unix"
};

// One listening socket and the connections it took, by peer.
struct listener {
  std::string name;           // "unix:/run/x.sock", "tcp:127.0.0.1:8200"
  bool tcp = false;
  std::string host;           // TCP: "127.0.0.1:8200", what a Host header may say
  listener_limits limits;
  std::shared_ptr<const tls_context> tls;  // TCP with listen.http.tls: sessions handshake first
  std::size_t open = 0;
  std::map<std::string, std::size_t> per_peer;  // "uid 1000", "127.0.0.1"
  bool under_pressure() const { return open * 4 >= limits.max_connections * 3; }
};

// What the server knows about a live connection: enough to close it when draining.
struct connection {
  explicit connection(stream_protocol::socket s) : socket(std::move(s)) {}
  virtual ~connection() = default;
  // Draining: an idle connection may still carry a request already on its way (answered with
  // "Connection: close"); it is closed once it stays idle for the drain grace.
  virtual void drain_idle() = 0;
  // Its listener is nearly full: an idle connection is closed once idle for `d`.
  virtual void shorten_idle(std::chrono::steady_clock::duration d) = 0;
  stream_protocol::socket socket;
  bool idle = false;  // waiting for the first byte of a next request, nothing buffered
  listener* from = nullptr;
  std::string peer_key;
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
  // Counts a new connection against its listener and peer; false: over a limit, close it.
  bool admit(listener& l, const std::string& peer_key);
  void release(connection* c);
  void remove(connection* c);
  void notify_if_drained();

  asio::io_context& io;
  request_handler handler;
  server_limits limits;
  std::list<stream_acceptor> acceptors;  // list: accept loops hold references
  std::list<listener> listeners;         // one per acceptor, same order
  std::uint16_t tcp_port = 0;
  std::shared_ptr<const tls_context> tcp_tls;  // given to TCP listeners (server::use_tls)
  std::unordered_set<connection*> connections;
  bool draining = false;
  bool stopped = false;
  bool holding = false;  // listeners are bound but not accepting yet (see server::hold_accepting)
  std::vector<std::pair<stream_acceptor*, listener*>> held;
  std::function<void()> on_drained;
};

// Runs one accepted connection to its end (session.cpp).
void start_session(std::shared_ptr<server_state> state, stream_protocol::socket socket, listener& from,
                   connecting_peer peer);

// Listening sockets (listener.cpp); each throws std::runtime_error with a clear message.
stream_acceptor open_unix_acceptor(asio::io_context& io, const unix_listener_options& options);
stream_acceptor open_tcp_acceptor(asio::io_context& io, const std::string& address);
stream_acceptor adopt_acceptor(asio::io_context& io, int fd);
// "unix:/run/x.sock", "tcp:127.0.0.1:8200": for logs.
std::string describe(const stream_acceptor& acceptor);
// Reads who is connecting (connecting_peer, above) on an accepted socket.
connecting_peer identify_peer(stream_protocol::socket& socket);
// Port of a TCP acceptor, 0 for other families.
std::uint16_t port_of(const stream_acceptor& acceptor);

}  // namespace hsmb::api
