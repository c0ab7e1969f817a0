// broker_client: Beast over a generic stream socket (Unix or TCP). Each call runs asynchronous
// operations on a private io_context until they finish or the call's deadline passes, which is
// how a synchronous call gets a timeout (as in Asio's blocking_tcp_client example).
#include "api/client/broker_client.h"

#include <charconv>
#include <stdexcept>
#include <vector>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace hsmb::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using clock = std::chrono::steady_clock;
using stream_protocol = asio::generic::stream_protocol;

// Errors that mean the peer had closed the connection.
bool peer_closed(error_code ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::connection_aborted;
}

http::request<http::string_body> make_request(std::string_view method, std::string_view target, std::string_view body,
                                              std::string_view token, const std::string& host) {
  http::request<http::string_body> message;
  message.method_string(method);  // keeps verbs Beast does not know, such as LIST
  message.target(target);
  message.version(11);
  message.set(http::field::host, host);
  message.set(http::field::user_agent, "hsmb-client");
  if (!token.empty()) message.set("X-Vault-Token", token);
  if (!body.empty()) {
    message.set(http::field::content_type, "application/json");
    message.body() = std::string(body);
  }
  message.prepare_payload();
  return message;
}

}  // namespace

std::optional<endpoint> parse_address(std::string_view url) {
  endpoint ep;
  if (url.starts_with("unix://")) {
    ep.unix_path = std::string(url.substr(7));
    if (ep.unix_path.empty()) return std::nullopt;
    return ep;
  }
  if (!url.starts_with("http://")) return std::nullopt;
  std::string_view rest = url.substr(7);
  rest = rest.substr(0, rest.find('/'));  // a path after host:port is ignored
  std::string_view port_text;
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    ep.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return std::nullopt;
    if (!rest.empty()) port_text = rest.substr(1);
  } else {
    auto colon = rest.find(':');
    ep.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
  }
  if (ep.host.empty()) return std::nullopt;
  ep.port = 80;
  if (!port_text.empty() || rest.ends_with(':')) {
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
      return std::nullopt;
    ep.port = static_cast<std::uint16_t>(port);
  }
  return ep;
}

std::string to_string(const endpoint& ep) {
  if (!ep.unix_path.empty()) return "unix://" + ep.unix_path;
  bool v6 = ep.host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + ep.host + "]" : ep.host) + ":" + std::to_string(ep.port);
}

struct broker_client::impl {
  // How one request/response exchange ended.
  struct outcome {
    error_code ec;
    bool timed_out = false;
    bool unanswered = false;  // the peer had closed: nothing of a response arrived
    reply answer;
  };

  impl(endpoint ep, std::chrono::milliseconds timeout) : ep(std::move(ep)), timeout(timeout) {}

  // Runs the started operations until they finish; false when the deadline passed first (the
  // socket is then closed so they complete with operation_aborted).
  bool run_until(clock::time_point deadline) {
    io.restart();
    io.run_until(deadline);
    if (io.stopped()) return true;
    close();
    io.run();
    return false;
  }

  std::runtime_error failure(const std::string& why) const {
    return std::runtime_error("cannot reach " + to_string(ep) + ": " + why);
  }
  std::runtime_error timeout_failure() const {
    return failure("timed out after " + std::to_string(timeout.count()) + " ms");
  }

  std::vector<stream_protocol::endpoint> resolve() {
    if (!ep.unix_path.empty()) return {stream_protocol::endpoint(asio::local::stream_protocol::endpoint(ep.unix_path))};
    error_code ec;
    asio::ip::tcp::resolver resolver(io);
    auto results = resolver.resolve(ep.host, std::to_string(ep.port), asio::ip::tcp::resolver::numeric_service, ec);
    if (ec) throw failure("resolving " + ep.host + ": " + ec.message());
    std::vector<stream_protocol::endpoint> out;
    for (const auto& entry : results) out.emplace_back(entry.endpoint());
    return out;
  }

  void connect(clock::time_point deadline) {
    close();
    error_code ec = asio::error::host_not_found;
    for (const auto& target : resolve()) {
      socket.close(ec);
      socket.open(target.protocol(), ec);
      if (ec) break;
      socket.async_connect(target, [&](error_code e) { ec = e; });
      if (!run_until(deadline)) throw timeout_failure();
      if (!ec) break;
    }
    if (ec) {
      close();
      throw failure(ec.message());
    }
    if (ep.unix_path.empty()) socket.set_option(asio::ip::tcp::no_delay(true), ec);
    ++opened;
  }

  outcome exchange(http::request<http::string_body>& message, bool head, clock::time_point deadline) {
    outcome out;
    http::async_write(socket, message, [&](error_code e, std::size_t) { out.ec = e; });
    if (!run_until(deadline)) return {.timed_out = true};
    if (out.ec) {
      out.unanswered = peer_closed(out.ec);
      return out;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);  // the server bounds its answers
    if (head) parser.skip(true);     // a HEAD answer has a length but no body
    http::async_read(socket, buffer, parser, [&](error_code e, std::size_t) { out.ec = e; });
    if (!run_until(deadline)) return {.timed_out = true};
    if (out.ec) {
      out.unanswered = peer_closed(out.ec) && !parser.got_some() && buffer.size() == 0;
      return out;
    }
    auto& response = parser.get();
    out.answer = {response.result_int(), std::move(response.body()), !response.keep_alive()};
    return out;
  }

  void close() {
    error_code ec;
    socket.close(ec);
    buffer.clear();
  }

  endpoint ep;
  std::chrono::milliseconds timeout;
  asio::io_context io;
  stream_protocol::socket socket{io};
  beast::flat_buffer buffer;
  std::size_t opened = 0;
};

broker_client::broker_client(endpoint ep, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<impl>(std::move(ep), timeout)) {}
broker_client::~broker_client() = default;
broker_client::broker_client(broker_client&&) noexcept = default;
broker_client& broker_client::operator=(broker_client&&) noexcept = default;

reply broker_client::request(std::string_view method, std::string_view target, std::string_view body,
                             std::string_view token) {
  auto deadline = clock::now() + impl_->timeout;
  std::string host = impl_->ep.unix_path.empty() ? impl_->ep.host : "localhost";
  auto message = make_request(method, target, body, token, host);
  bool head = method == "HEAD";

  bool reused = impl_->socket.is_open();
  if (!reused) impl_->connect(deadline);
  auto out = impl_->exchange(message, head, deadline);
  if (out.unanswered && reused) {
    // The server closed this kept-alive connection while it was idle (idle timeout, drain).
    // It closes a connection without answering only when no byte of a next request had arrived,
    // so it never read this one: sending it again on a fresh connection cannot run it twice.
    // (Only a broker that died mid-request could have acted on it; that is not a drain.)
    impl_->connect(deadline);
    out = impl_->exchange(message, head, deadline);
  }
  if (out.timed_out) throw impl_->timeout_failure();
  if (out.ec) {
    impl_->close();
    throw impl_->failure(out.ec.message());
  }
  if (out.answer.connection_close) impl_->close();
  return std::move(out.answer);
}

void broker_client::close() { impl_->close(); }

std::size_t broker_client::connections_opened() const { return impl_->opened; }

const endpoint& broker_client::target() const { return impl_->ep; }

}  // namespace hsmb::client
