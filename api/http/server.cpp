// hsmb::api::server: owns the listeners (one accept loop coroutine each), counts connections,
// and drains. All of it runs on the io_context's single thread; call drain() and
// open_connections() from that thread, and destroy the server there or once it has stopped.
#include "api/http/server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "api/http/server_state.h"

namespace hsmb::api {
namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// Pause after an accept failure such as EMFILE, so a full fd table does not spin the loop.
constexpr auto accept_retry_delay = std::chrono::milliseconds(100);

asio::awaitable<void> accept_loop(std::shared_ptr<server_state> state, stream_acceptor& acceptor, listener& from) {
  asio::steady_timer pause(state->io);
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    // A connection the kernel handed over before a drain closed the acceptor is still served
    // (answered with Connection: close): dropping it would fail a request nobody else will see.
    if (ec == asio::error::operation_aborted || (ec && !acceptor.is_open())) break;
    if (ec) {
      spdlog::warn("accept on {} failed: {}", from.name, ec.message());
      pause.expires_after(accept_retry_delay);
      co_await pause.async_wait(use_tuple);
      continue;
    }
    auto peer = identify_peer(socket);
    if (state->connections.size() >= state->limits.max_connections || !state->admit(from, peer.key)) {
      spdlog::debug("{}: refusing a connection from {} ({} open there, {} in all)", from.name, peer.key, from.open,
                    state->connections.size());
      socket.close(ec);
      continue;
    }
    if (from.under_pressure())  // idle keep-alive connections make room for new ones sooner
      for (auto* c : state->connections)
        if (c->from == &from && c->idle) c->shorten_idle(state->limits.pressure_idle_timeout);
    start_session(state, std::move(socket), from, std::move(peer));
    if (!acceptor.is_open()) break;
  }
  spdlog::debug("stopped accepting on {}", from.name);
}

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("http listener failed: {}", x.what());
  }
}

}  // namespace

server_state::server_state(asio::io_context& io, request_handler handler, server_limits limits)
    : io(io), handler(std::move(handler)), limits(limits) {}

void server_state::start(stream_acceptor acceptor, std::string name) {
  if (draining) throw std::runtime_error("server is draining: cannot add listener " + name);
  if (tcp_port == 0) tcp_port = port_of(acceptor);
  auto& stored = acceptors.emplace_back(std::move(acceptor));
  auto& from = listeners.emplace_back();
  from.tcp = name.starts_with("tcp:");
  from.host = from.tcp ? name.substr(4) : std::string();
  from.limits = from.tcp ? limits.tcp_listener : limits.unix_listener;
  if (from.tcp) from.tls = tcp_tls;
  from.name = std::move(name);
  if (holding) {
    held.emplace_back(&stored, &from);
    return;
  }
  spdlog::info("listening on {}{}", from.name, from.tls ? " (TLS)" : "");
  asio::co_spawn(io, accept_loop(shared_from_this(), stored, from), log_exception);
}

void server_state::release_held() {
  holding = false;
  auto waiting = std::exchange(held, {});
  for (auto& [acceptor, from] : waiting) {
    if (!acceptor->is_open()) continue;  // drained before it ever accepted
    spdlog::info("listening on {}{}", from->name, from->tls ? " (TLS)" : "");
    asio::co_spawn(io, accept_loop(shared_from_this(), *acceptor, *from), log_exception);
  }
}

bool server_state::admit(listener& l, const std::string& peer_key) {
  auto& mine = l.per_peer[peer_key];
  if (l.open >= l.limits.max_connections || mine >= l.limits.max_connections_per_peer) {
    if (mine == 0) l.per_peer.erase(peer_key);
    return false;
  }
  ++l.open;
  ++mine;
  return true;
}

void server_state::release(connection* c) {
  if (!c->from) return;
  --c->from->open;
  auto it = c->from->per_peer.find(c->peer_key);
  if (it != c->from->per_peer.end() && --it->second == 0) c->from->per_peer.erase(it);
}

void server_state::drain(std::function<void()> callback) {
  draining = true;
  on_drained = std::move(callback);
  boost::system::error_code ec;
  // Closed, not unlinked: a successor process may be accepting on the same socket file.
  for (auto& acceptor : acceptors) acceptor.close(ec);
  for (auto* c : connections)
    if (c->idle) c->drain_idle();
  spdlog::info("draining: {} connection(s) open", connections.size());
  notify_if_drained();
}

void server_state::stop() {
  stopped = true;
  on_drained = nullptr;
  boost::system::error_code ec;
  for (auto& acceptor : acceptors) acceptor.close(ec);
  for (auto* c : connections) c->socket.close(ec);
}

void server_state::remove(connection* c) {
  connections.erase(c);
  release(c);
  notify_if_drained();
}

void server_state::notify_if_drained() {
  if (!draining || stopped || !connections.empty() || !on_drained) return;
  asio::post(io, std::exchange(on_drained, nullptr));
}

struct server::impl : server_state {
  using server_state::server_state;
};

server::server(asio::io_context& io, request_handler handler, server_limits limits)
    : impl_(std::make_shared<impl>(io, std::move(handler), limits)) {}

server::~server() { impl_->stop(); }

void server::listen_unix(const unix_listener_options& options) {
  auto acceptor = open_unix_acceptor(impl_->io, options);
  auto name = describe(acceptor);
  impl_->start(std::move(acceptor), std::move(name));
}

void server::listen_tcp(const std::string& address) {
  auto acceptor = open_tcp_acceptor(impl_->io, address);
  auto name = describe(acceptor);
  impl_->start(std::move(acceptor), std::move(name));
}

void server::adopt_listener(int fd) {
  auto acceptor = adopt_acceptor(impl_->io, fd);
  auto name = describe(acceptor);
  impl_->start(std::move(acceptor), std::move(name));
}

void server::use_tls(std::shared_ptr<const tls_context> context) { impl_->tcp_tls = std::move(context); }

void server::hold_accepting() { impl_->holding = true; }
void server::start_accepting() { impl_->release_held(); }

std::uint16_t server::tcp_port() const { return impl_->tcp_port; }

void server::drain(std::function<void()> on_drained) { impl_->drain(std::move(on_drained)); }

std::size_t server::open_connections() const { return impl_->connections.size(); }

}  // namespace hsmb::api
