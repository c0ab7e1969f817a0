// One HTTP connection: wait for a request, read it, hand it to the application, write the
// response, and repeat while keep-alive holds. Timeouts come from a deadline timer watched by a
// second coroutine that closes the socket when the deadline passes (Unix and TCP alike).
// On a TLS listener the same session runs over an SSL stream on the socket, after a handshake.
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include "api/http/cross_site.h"
#include "api/http/request_reader.h"
#include "api/http/server_state.h"
#include "api/http/tls_context.h"
#include "api/http/tls_peer.h"

namespace hsmb::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using clock = std::chrono::steady_clock;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// How long a closing connection may still send bytes we discard (see close_gracefully).
constexpr clock::duration linger_limit = std::chrono::seconds(2);

using http_response = http::response<http::string_body>;
// Over the connection's socket, which stays the session's to time out and close.
using tls_stream = asio::ssl::stream<stream_protocol::socket&>;

// The verified client certificate, if the handshake asked for one.
std::optional<tls_peer> verified_peer(SSL* ssl) {
  const X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  return tls_peer_of(*cert);
}

http_response to_http(response answer, unsigned version, bool keep_alive, bool head) {
  unsigned status = answer.status >= 200 && answer.status <= 599 ? answer.status : 500;
  http_response message{static_cast<http::status>(status), version};
  message.set(http::field::server, "hsm-broker");
  if (status != 204 && status != 304) {  // these must not carry a body or its length
    if (!answer.content_type.empty()) message.set(http::field::content_type, answer.content_type);
    if (answer.retry_after) message.set(http::field::retry_after, std::to_string(answer.retry_after));
    message.body() = std::move(answer.body);
  }
  message.prepare_payload();
  if (head) message.body().clear();  // HEAD: the full answer's headers, no body
  message.keep_alive(keep_alive);
  return message;
}

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("http session failed: {}", x.what());
  }
}

class session : public connection {
 public:
  session(std::shared_ptr<server_state> state, stream_protocol::socket socket, listener& from, connecting_peer peer)
      : connection(std::move(socket)), state_(std::move(state)), deadline_(state_->io), reader_(state_->limits) {
    deadline_.expires_at(clock::time_point::max());
    this->from = &from;
    this->peer_key = std::move(peer.key);
    peer_ = peer.identity;
    remote_address_ = std::move(peer.address);
    if (from.tls) tls_.emplace(this->socket, from.tls->asio_context());  // the member, not the moved-from argument
    state_->add(this);
  }
  ~session() { state_->remove(this); }

  asio::awaitable<void> run();
  asio::awaitable<void> watchdog();
  void drain_idle() override { shorten_idle(drain_grace); }
  void shorten_idle(clock::duration d) override {
    if (idle && deadline_at_ > clock::now() + d) set_deadline(d);
  }

 private:
  void tune_socket();
  asio::awaitable<bool> handshake();
  asio::awaitable<bool> await_request();
  asio::awaitable<request_reader::progress> read_request();
  asio::awaitable<error_code> read_more();
  asio::awaitable<response> handle(const request& req);
  // By reference: GCC 12 mishandles non-trivial temporaries in co_await expressions.
  asio::awaitable<bool> write_response(response& answer, unsigned version, bool keep_alive, bool head);
  asio::awaitable<void> close_gracefully();
  void close();

  request make_request(const http_request& message) {
    return {.method = message.method_string(),
            .target = message.target(),
            .body = message.body(),
            .vault_token = message["X-Vault-Token"],
            .authorization = message[beast::http::field::authorization],
            .vault_request = message["X-Vault-Request"],
            .peer = peer_,
            .tls = tls_peer_ ? &*tls_peer_ : nullptr,
            .remote_address = remote_address_,
            .client_gone = [this] { return client_gone(); }};
  }
  // Whether the client closed its side while its request runs (a batch then stops): a peek
  // that costs one non-blocking syscall, made only when a handler asks.
  // On a Unix socket only a full close counts (POLLHUP): a client that shut down its sending side
  // may still read the answer. On TCP a FIN cannot be told from that, and counts.
  bool client_gone() {
    if (!from->tcp) {
      pollfd p{socket.native_handle(), POLLIN, 0};
      return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
    }
    char byte;
    auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }
  void set_deadline(clock::duration d) { set_deadline_at(clock::now() + d); }
  // Lazily: a later deadline waits for the timer to fire at the earlier one, since re-arming
  // a timer wakes its watchdog through the scheduler, three times a request otherwise.
  void set_deadline_at(clock::time_point at) {
    bool sooner = at < deadline_.expiry();
    deadline_at_ = at;
    if (sooner) deadline_.expires_at(at);
  }
  const server_limits& limits() const { return state_->limits; }

  std::shared_ptr<server_state> state_;
  asio::steady_timer deadline_;  // fires at or before deadline_at_
  clock::time_point deadline_at_ = clock::time_point::max();
  request_reader reader_;
  std::optional<peer_identity> peer_;
  std::string remote_address_;
  std::optional<tls_stream> tls_;  // a TLS listener's connection
  std::optional<tls_peer> tls_peer_;
  bool writes_at_once_ = false;
};

asio::awaitable<void> session::run() {
  tune_socket();
  if (tls_ && !co_await handshake()) {
    close();
    co_return;
  }
  error_code nb;
  socket.non_blocking(true, nb);
  // A blocking socket could stall the io thread on a slow reader; a TLS write goes through the
  // SSL engine, which a would-block write at once would leave with bytes half sent.
  writes_at_once_ = !nb && !tls_;
  while (co_await await_request()) {
    if (co_await read_request() == request_reader::progress::failed) {
      if (auto refusal = reader_.refusal()) {
        spdlog::debug("http: bad request, answering {}", refusal->status);
        response answer = *refusal;
        if (co_await write_response(answer, 11, false, false)) co_await close_gracefully();
      }
      break;
    }
    const http_request& message = reader_.message();
    response answer;
    if (auto refused = refuse_cross_site(message, from->tcp, from->host, limits())) answer = std::move(*refused);
    else answer = co_await handle(make_request(message));
    // Checked after the handler: a drain that began meanwhile closes this connection too.
    bool keep_alive = message.keep_alive() && !state_->draining;
    bool head = message.method() == http::verb::head;
    if (!co_await write_response(answer, message.version(), keep_alive, head)) break;
    if (!keep_alive) {
      co_await close_gracefully();
      break;
    }
    reader_.start_next();
  }
  close();
}

// Closes the socket when the current deadline passes; the pending operation then fails.
asio::awaitable<void> session::watchdog() {
  while (socket.is_open()) {
    co_await deadline_.async_wait(use_tuple);
    if (!socket.is_open()) break;
    if (deadline_at_ <= clock::now()) {
      spdlog::debug("http: connection timed out");
      error_code ec;
      socket.close(ec);
    } else if (deadline_.expiry() < deadline_at_) {
      deadline_.expires_at(deadline_at_);  // the deadline moved later meanwhile
    }
  }
}

void session::tune_socket() {
  error_code ec;
  if (from->tcp) socket.set_option(asio::ip::tcp::no_delay(true), ec);
}

// Bounded like an idle connection (and shortened as one by a drain or a full listener), so a
// client that never handshakes does not keep its slot. Failures are the client's: logged at debug.
asio::awaitable<bool> session::handshake() {
  idle = true;
  auto idle_for = from->under_pressure() ? limits().pressure_idle_timeout : limits().idle_timeout;
  set_deadline(std::min<clock::duration>(idle_for, limits().io_timeout));
  auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, use_tuple);
  idle = false;
  if (ec) {
    spdlog::debug("tls: handshake with {} failed: {}", remote_address_, ec.message());
    co_return false;
  }
  tls_peer_ = verified_peer(tls_->native_handle());
  if (tls_peer_)
    spdlog::debug("tls: client {} is \"{}\" {}", remote_address_, tls_peer_->subject,
                  tls_peer_->uri_sans.empty() ? std::string() : tls_peer_->uri_sans.front());
  co_return true;  // a drain meanwhile: await_request gives the request on its way drain_grace
}

// Waits until a next request starts arriving; false when the connection should end instead.
// It reads rather than waits for readability: the reactor then reads as the bytes arrive, where
// a readiness wait costs an epoll_ctl and the read after it a pass of the event loop.
asio::awaitable<bool> session::await_request() {
  if (reader_.buffered()) co_return true;  // a pipelined request is already here
  idle = true;
  // Draining: a request the client sent as the previous response left is still answered.
  auto idle_for = from->under_pressure() ? limits().pressure_idle_timeout : limits().idle_timeout;
  set_deadline(state_->draining ? std::chrono::duration_cast<clock::duration>(drain_grace) : clock::duration(idle_for));
  auto ec = co_await read_more();
  idle = false;
  co_return !ec;
}

// Parses what is buffered, reading more until the request is whole or refused.
asio::awaitable<request_reader::progress> session::read_request() {
  set_deadline(limits().io_timeout);
  bool continue_sent = false;
  for (;;) {
    auto progress = reader_.parse();
    if (progress != request_reader::progress::need_more) co_return progress;
    if (!continue_sent && reader_.expects_continue()) {
      // curl and others hold a larger body back until they see this.
      static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
      continue_sent = true;
      auto [wec, wn] = tls_ ? co_await asio::async_write(*tls_, asio::buffer(go_on), use_tuple)
                            : co_await asio::async_write(socket, asio::buffer(go_on), use_tuple);
      if (wec) co_return reader_.end_of_stream();
    }
    if (auto rec = co_await read_more()) {
      if (rec != asio::error::eof) spdlog::debug("http: reading request: {}", rec.message());
      co_return reader_.end_of_stream();
    }
  }
}

// Into the reader's buffer, which bounds it.
asio::awaitable<error_code> session::read_more() {
  auto space = reader_.prepare();
  if (space.size() == 0) co_return asio::error::no_buffer_space;  // parse() has said why
  auto [ec, n] = tls_ ? co_await tls_->async_read_some(space, use_tuple) : co_await socket.async_read_some(space, use_tuple);
  reader_.commit(n);
  co_return ec;
}

asio::awaitable<response> session::handle(const request& req) {
  set_deadline_at(clock::time_point::max());  // the handler keeps its own deadlines
  std::string failure;
  try {
    co_return co_await state_->handler(req);
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  spdlog::error("http: handler failed on {} {}: {}", req.method, req.target, failure);
  co_return error_response(500, "internal error");
}

// Most answers fit the socket's buffer: they are written at once, and only a remainder goes
// through an asynchronous write (whose completion would cost a pass of the event loop).
asio::awaitable<bool> session::write_response(response& answer, unsigned version, bool keep_alive, bool head) {
  auto message = to_http(std::move(answer), version, keep_alive, head);
  http::serializer<false, http::string_body> out{message};
  error_code ec;
  if (writes_at_once_) http::write(socket, out, ec);  // non-blocking: stops at would_block
  if (ec && ec != asio::error::would_block) {
    spdlog::debug("http: writing response: {}", ec.message());
    co_return false;
  }
  if (out.is_done()) co_return true;
  set_deadline(limits().io_timeout);
  auto [wec, n] = tls_ ? co_await http::async_write(*tls_, out, use_tuple) : co_await http::async_write(socket, out, use_tuple);
  if (wec) spdlog::debug("http: writing response: {}", wec.message());
  co_return !wec;
}

// Half-close, then read and discard until the peer closes too. Closing at once with unread
// bytes (a rejected body, a pipelined request) makes the kernel send a reset, which can destroy
// the response before the client has read it. TLS too: the half-close is the socket's, and what
// arrives after it is discarded unread by the SSL engine.
asio::awaitable<void> session::close_gracefully() {
  error_code ec;
  socket.shutdown(stream_protocol::socket::shutdown_send, ec);
  set_deadline(std::min<clock::duration>(limits().io_timeout, linger_limit));
  std::array<char, 4096> sink;
  for (;;) {
    auto [rec, n] = co_await socket.async_read_some(asio::buffer(sink), use_tuple);
    if (rec) break;
  }
}

void session::close() {
  error_code ec;
  socket.close(ec);
  deadline_.cancel();  // lets the watchdog see the closed socket and finish
}

asio::awaitable<void> serve(std::shared_ptr<session> s) { co_await s->run(); }
asio::awaitable<void> watch(std::shared_ptr<session> s) { co_await s->watchdog(); }

}  // namespace

void start_session(std::shared_ptr<server_state> state, stream_protocol::socket socket, listener& from,
                   connecting_peer peer) {
  auto& io = state->io;
  auto s = std::make_shared<session>(std::move(state), std::move(socket), from, std::move(peer));
  asio::co_spawn(io, watch(s), log_exception);
  asio::co_spawn(io, serve(std::move(s)), log_exception);
}

}  // namespace hsmb::api
