// One HTTP connection: wait for a request, read it, hand it to the application, write the
// response, and repeat while keep-alive holds. Timeouts come from a deadline timer watched by a
// second coroutine that closes the socket when the deadline passes (Unix and TCP alike).
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
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include "api/http/server_state.h"

namespace hsmb::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using clock = std::chrono::steady_clock;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// How long a closing connection may still send bytes we discard (see close_gracefully).
constexpr clock::duration linger_limit = std::chrono::seconds(2);

using request_parser = http::request_parser<http::string_body>;
using http_request = http::request<http::string_body>;
using http_response = http::response<http::string_body>;

response error_response(unsigned status, const std::string& message) {
  return {status, R"({"errors":[")" + message + R"("]})"};
}

// The answer to a request that could not be read, when it deserves one.
std::optional<response> read_error_response(error_code ec, const server_limits& limits) {
  if (ec == http::error::body_limit)
    return error_response(413, "request body larger than " + std::to_string(limits.max_body) + " bytes");
  if (ec == http::error::header_limit)
    return error_response(431, "request header larger than " + std::to_string(limits.max_header) + " bytes");
  if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == http::error::short_read)
    return std::nullopt;  // the peer went away
  if (ec.category() == http::make_error_code(http::error::bad_method).category())
    return error_response(400, "malformed HTTP request");
  return std::nullopt;  // transport error or timeout
}

http_response to_http(response answer, unsigned version, bool keep_alive, bool head) {
  unsigned status = answer.status >= 200 && answer.status <= 599 ? answer.status : 500;
  http_response message{static_cast<http::status>(status), version};
  message.set(http::field::server, "hsm-broker");
  if (status != 204 && status != 304) {  // these must not carry a body or its length
    if (!answer.content_type.empty()) message.set(http::field::content_type, answer.content_type);
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
  session(std::shared_ptr<server_state> state, stream_protocol::socket socket)
      : connection(std::move(socket)), state_(std::move(state)), deadline_(state_->io) {
    deadline_.expires_at(clock::time_point::max());
    state_->add(this);
  }
  ~session() { state_->remove(this); }

  asio::awaitable<void> run();
  asio::awaitable<void> watchdog();
  void drain_idle() override {
    if (deadline_at_ > clock::now() + drain_grace) set_deadline(drain_grace);
  }

 private:
  void read_peer_identity();
  asio::awaitable<bool> await_request();
  asio::awaitable<error_code> read_request(request_parser& parser);
  error_code parse_buffered(request_parser& parser);
  asio::awaitable<error_code> read_more();
  asio::awaitable<response> handle(const request& req);
  // By reference: GCC 12 mishandles non-trivial temporaries in co_await expressions.
  asio::awaitable<bool> write_response(response& answer, unsigned version, bool keep_alive, bool head);
  asio::awaitable<void> close_gracefully();
  void close();

  request make_request(const http_request& message) const {
    return {.method = message.method_string(),
            .target = message.target(),
            .body = message.body(),
            .vault_token = message["X-Vault-Token"],
            .peer = peer_};
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
  beast::flat_buffer buffer_;
  std::optional<peer_identity> peer_;
  bool writes_at_once_ = false;
};

asio::awaitable<void> session::run() {
  read_peer_identity();
  error_code nb;
  socket.non_blocking(true, nb);
  writes_at_once_ = !nb;  // a blocking socket could stall the io thread on a slow reader
  while (co_await await_request()) {
    request_parser parser;
    parser.eager(true);
    parser.header_limit(static_cast<std::uint32_t>(limits().max_header));
    parser.body_limit(limits().max_body);
    if (auto ec = co_await read_request(parser)) {
      if (auto answer = read_error_response(ec, limits())) {
        spdlog::debug("http: bad request ({}), answering {}", ec.message(), answer->status);
        if (co_await write_response(*answer, 11, false, false)) co_await close_gracefully();
      } else if (ec != http::error::end_of_stream) {
        spdlog::debug("http: reading request: {}", ec.message());
      }
      break;
    }
    const http_request& message = parser.get();
    response answer = co_await handle(make_request(message));
    // Checked after the handler: a drain that began meanwhile closes this connection too.
    bool keep_alive = message.keep_alive() && !state_->draining;
    bool head = message.method() == http::verb::head;
    if (!co_await write_response(answer, message.version(), keep_alive, head)) break;
    if (!keep_alive) {
      co_await close_gracefully();
      break;
    }
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

void session::read_peer_identity() {
  error_code ec;
  auto local = socket.local_endpoint(ec);
  if (ec) return;
  if (local.protocol().family() != AF_UNIX) {
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    return;
  }
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
    peer_ = peer_identity{cred.uid, cred.gid, cred.pid};
  else
    spdlog::debug("http: SO_PEERCRED failed: {}", std::strerror(errno));
}

// Waits until a next request starts arriving; false when the connection should end instead.
// It reads rather than waits for readability: the reactor then reads as the bytes arrive, where
// a readiness wait costs an epoll_ctl and the read after it a pass of the event loop.
asio::awaitable<bool> session::await_request() {
  if (buffer_.size() > 0) co_return true;  // a pipelined request is already here
  idle = true;
  // Draining: a request the client sent as the previous response left is still answered.
  set_deadline(state_->draining ? std::chrono::duration_cast<clock::duration>(drain_grace) : limits().idle_timeout);
  auto ec = co_await read_more();
  idle = false;
  co_return !ec;
}

// Parses what is buffered, reading more until the request is whole or broken.
asio::awaitable<error_code> session::read_request(request_parser& parser) {
  set_deadline(limits().io_timeout);
  bool continue_sent = false;
  for (;;) {
    auto ec = parse_buffered(parser);
    if (ec != http::error::need_more) co_return ec;
    if (!continue_sent && parser.is_header_done() && parser.get().version() >= 11 &&
        beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      // curl and others hold a larger body back until they see this.
      static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
      continue_sent = true;
      auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(go_on), use_tuple);
      if (wec) co_return wec;
    }
    if (auto rec = co_await read_more()) {
      if (rec != asio::error::eof) co_return rec;
      co_return parser.got_some() ? http::error::partial_message : http::error::end_of_stream;
    }
  }
}

// need_more when the request is not whole yet; the parser enforces the header and body limits.
error_code session::parse_buffered(request_parser& parser) {
  error_code ec;
  while (!parser.is_done() && buffer_.size() > 0) {
    auto used = parser.put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec || used == 0) break;
  }
  if (parser.is_done()) return {};
  return ec ? ec : error_code(http::error::need_more);
}

// Sized by what the buffer already holds (512 bytes at first): an idle keep-alive connection
// keeps its buffer, and most requests are small.
asio::awaitable<error_code> session::read_more() {
  constexpr std::size_t most = 64 * 1024;
  auto [ec, n] = co_await socket.async_read_some(buffer_.prepare(beast::read_size(buffer_, most)), use_tuple);
  buffer_.commit(n);
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
  auto [wec, n] = co_await http::async_write(socket, out, use_tuple);
  if (wec) spdlog::debug("http: writing response: {}", wec.message());
  co_return !wec;
}

// Half-close, then read and discard until the peer closes too. Closing at once with unread
// bytes (a rejected body, a pipelined request) makes the kernel send a reset, which can destroy
// the response before the client has read it.
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

void start_session(std::shared_ptr<server_state> state, stream_protocol::socket socket) {
  auto& io = state->io;
  auto s = std::make_shared<session>(std::move(state), std::move(socket));
  asio::co_spawn(io, watch(s), log_exception);
  asio::co_spawn(io, serve(std::move(s)), log_exception);
}

}  // namespace hsmb::api
