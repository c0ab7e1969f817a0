// broker_client: HTTP/1.1 over a plain non-blocking POSIX socket (Unix or TCP), Beast only parsing
// answers; poll() enforces the deadline, so a request usually costs one send, one poll and one recv.
#include "api/client/broker_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

namespace hsmb::client {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using clock = std::chrono::steady_clock;

error_code last_error() { return {errno, boost::system::system_category()}; }

// Errors that mean the peer had closed the connection.
bool peer_closed(error_code ec) {
  if (ec == http::error::end_of_stream) return true;
  if (ec.category() != boost::system::system_category()) return false;
  return ec.value() == ECONNRESET || ec.value() == EPIPE || ec.value() == ECONNABORTED;
}

// The request as it goes on the wire: what Beast's prepare_payload and serializer would write.
std::string make_request(std::string_view method, std::string_view target, std::string_view body,
                         std::string_view token, std::string_view host) {
  if (method == "TRACE" && !body.empty()) throw std::invalid_argument("invalid request body");
  std::string out;
  out.reserve(160 + target.size() + token.size() + body.size());
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ").append(host);
  out.append("\r\nUser-Agent: hsmb-client\r\nX-Vault-Request: true\r\n");  // as Vault's own client: passes auth.require_request_header
  if (!token.empty()) out.append("X-Vault-Token: ").append(token).append("\r\n");
  if (!body.empty()) out.append("Content-Type: application/json\r\n");
  if (!body.empty() || method == "POST" || method == "PUT" || method == "OPTIONS")
    out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append("\r\n").append(body);
  return out;
}

// Waits until fd is ready for events; false when the deadline passed first.
bool wait_for(int fd, short events, clock::time_point deadline) {
  for (;;) {
    auto left = deadline - clock::now();
    if (left <= clock::duration::zero()) return false;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{.tv_sec = static_cast<time_t>(ns / 1'000'000'000), .tv_nsec = static_cast<long>(ns % 1'000'000'000)};
    pollfd p{.fd = fd, .events = events, .revents = 0};
    int n = ::ppoll(&p, 1, &ts, nullptr);
    if (n > 0) return true;  // also on POLLERR/POLLHUP: the next call reports it
    if (n < 0 && errno != EINTR) return true;
  }
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

  // One address to connect to.
  struct address {
    sockaddr_storage storage{};
    socklen_t length = 0;
    int family = AF_UNSPEC;
  };

  impl(endpoint ep, std::chrono::milliseconds timeout) : ep(std::move(ep)), timeout(timeout) {}
  ~impl() { close(); }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  std::runtime_error failure(const std::string& why) const {
    return std::runtime_error("cannot reach " + to_string(ep) + ": " + why);
  }
  std::runtime_error timeout_failure() const {
    return failure("timed out after " + std::to_string(timeout.count()) + " ms");
  }

  std::vector<address> resolve() const {
    if (!ep.unix_path.empty()) {
      address a;
      auto& un = reinterpret_cast<sockaddr_un&>(a.storage);
      if (ep.unix_path.size() >= sizeof un.sun_path) throw failure(std::strerror(ENAMETOOLONG));
      un.sun_family = AF_UNIX;
      std::memcpy(un.sun_path, ep.unix_path.data(), ep.unix_path.size());
      bool abstract = ep.unix_path.front() == '\0';  // no terminating NUL for an abstract name
      a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + ep.unix_path.size() + (abstract ? 0 : 1));
      a.family = AF_UNIX;
      return {a};
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* results = nullptr;
    int rc = ::getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &results);
    if (rc != 0)
      throw failure("resolving " + ep.host + ": " + (rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc)));
    std::vector<address> out;
    for (auto* r = results; r != nullptr; r = r->ai_next) {
      if (r->ai_addrlen > sizeof(sockaddr_storage)) continue;
      address a;
      std::memcpy(&a.storage, r->ai_addr, r->ai_addrlen);
      a.length = r->ai_addrlen;
      a.family = r->ai_family;
      out.push_back(a);
    }
    ::freeaddrinfo(results);
    return out;
  }

  // Connects fd (already created, non-blocking) to a; 0 or the errno; -1 when the deadline passed.
  static int connect_one(int fd, const address& a, clock::time_point deadline) {
    for (;;) {
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.storage), a.length) == 0) return 0;
      if (errno == EAGAIN && a.family == AF_UNIX) {
        // A Unix listener's backlog is full: nothing to poll for, so try again shortly.
        if (clock::now() >= deadline) return -1;
        ::poll(nullptr, 0, 1);
        continue;
      }
      if (errno != EINPROGRESS && errno != EINTR) return errno;
      break;
    }
    if (!wait_for(fd, POLLOUT, deadline)) return -1;
    int error = 0;
    socklen_t length = sizeof error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
    return error;
  }

  void connect(clock::time_point deadline) {
    close();
    int error = EHOSTUNREACH;
    for (const auto& target : resolve()) {
      fd = ::socket(target.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) {
        error = errno;
        break;
      }
      error = connect_one(fd, target, deadline);
      if (error == 0) break;
      close();
      if (error < 0) throw timeout_failure();
    }
    if (error != 0) {
      close();
      throw failure(std::strerror(error));
    }
    if (ep.unix_path.empty()) {
      int on = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    ++opened;
  }

  // Writes all of data; the error, or timed_out.
  outcome send_all(std::string_view data, clock::time_point deadline) const {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait_for(fd, POLLOUT, deadline)) return {.timed_out = true};
      } else if (errno != EINTR) {
        return {.ec = last_error()};
      }
    }
    return {};
  }

  // Reads more bytes into the buffer: 0 on EOF, -1 with ec set on error or timeout (timed_out).
  ssize_t receive(bool wait_first, clock::time_point deadline, outcome& out) {
    if (begin == end) begin = end = 0;
    if (end == buffer.size()) {
      if (begin > 0) {  // move the unparsed rest to the front
        std::memmove(buffer.data(), buffer.data() + begin, end - begin);
        end -= begin;
        begin = 0;
      } else {
        buffer.resize(buffer.empty() ? 16384 : buffer.size() * 2);
      }
    }
    if (wait_first && !wait_for(fd, POLLIN, deadline)) {
      out.timed_out = true;
      return -1;
    }
    for (;;) {
      ssize_t n = ::recv(fd, buffer.data() + end, buffer.size() - end, 0);
      if (n >= 0) {
        end += static_cast<std::size_t>(n);
        return n;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait_for(fd, POLLIN, deadline)) {
          out.timed_out = true;
          return -1;
        }
      } else if (errno != EINTR) {
        out.ec = last_error();
        return -1;
      }
    }
  }

  outcome exchange(std::string_view message, bool head, clock::time_point deadline) {
    outcome out = send_all(message, deadline);
    if (out.timed_out) return out;
    if (out.ec) {
      out.unanswered = peer_closed(out.ec);
      return out;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);  // the server bounds its answers
    parser.eager(true);
    if (head) parser.skip(true);  // a HEAD answer has a length but no body
    // The answer takes the broker a while, so the first read waits before it tries.
    bool wait_first = true;
    while (!parser.is_done()) {
      if (begin < end) {
        error_code ec;
        std::size_t used = parser.put(boost::asio::buffer(buffer.data() + begin, end - begin), ec);
        begin += used;
        if (ec && ec != http::error::need_more) {
          out.ec = ec;
          return out;
        }
        if (parser.is_done()) break;
        if (used > 0 && !ec && begin < end) continue;
      }
      ssize_t n = receive(wait_first, deadline, out);
      wait_first = false;
      if (n < 0) {
        if (out.ec) out.unanswered = peer_closed(out.ec) && !parser.got_some() && begin == end;
        return out;
      }
      if (n == 0) {  // the peer closed
        if (!parser.got_some()) {
          out.ec = http::error::end_of_stream;
          out.unanswered = begin == end;
          return out;
        }
        error_code ec;
        parser.put_eof(ec);
        if (ec) {
          out.ec = ec;
          return out;
        }
        break;
      }
    }
    auto& response = parser.get();
    out.answer = {response.result_int(), std::move(response.body()), !response.keep_alive()};
    return out;
  }

  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    begin = end = 0;
  }

  endpoint ep;
  std::chrono::milliseconds timeout;
  int fd = -1;
  std::vector<char> buffer;  // bytes read; [begin, end) not parsed yet (they belong to the next answer)
  std::size_t begin = 0;
  std::size_t end = 0;
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
  std::string_view host = impl_->ep.unix_path.empty() ? std::string_view(impl_->ep.host) : "localhost";
  auto message = make_request(method, target, body, token, host);
  bool head = method == "HEAD";

  bool reused = impl_->fd >= 0;
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
  if (out.timed_out) {
    impl_->close();
    throw impl_->timeout_failure();
  }
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
