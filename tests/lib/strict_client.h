// Test helper: an HTTP/1.1 client that never sends a request twice. broker_client quietly resends a
// request whose kept-alive connection closed unanswered, which is right for an application but
// hides exactly what a hand-off test must see. This one sends each request once: a connection
// that closes before the answer is a failed request. A `Connection: close` answer (a draining
// broker) is fine: the NEXT request opens a new connection, counted in reconnects(). A connection
// found closed before a request is written is also replaced (nothing was sent on it), and counted.
// Header-only; blocking sockets with poll() deadlines.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>

#include "api/client/broker_client.h"

namespace hsmb::test {

class strict_client {
 public:
  struct result {
    unsigned status = 0;       // 0: no answer (transport failure, closed unanswered, timeout)
    std::string body;
    std::string error;         // why there was no answer
    bool connection_close = false;
  };

  explicit strict_client(client::endpoint ep, bool keep_alive = true,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : ep_(std::move(ep)), keep_alive_(keep_alive), timeout_(timeout) {}
  ~strict_client() { close(); }
  strict_client(const strict_client&) = delete;
  strict_client& operator=(const strict_client&) = delete;

  result request(std::string_view method, std::string_view target, std::string_view body = {}) {
    auto deadline = std::chrono::steady_clock::now() + timeout_;
    result out;
    if (fd_ >= 0 && peer_closed()) {  // closed while idle: nothing was sent on it
      close();
      ++stale_;
    }
    if (fd_ < 0 && !connect(out)) return out;
    std::string msg;
    msg.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: localhost\r\n");
    if (!body.empty() || method == "POST" || method == "PUT")
      msg.append("Content-Type: application/json\r\nContent-Length: ").append(std::to_string(body.size())).append("\r\n");
    if (!keep_alive_) msg.append("Connection: close\r\n");
    msg.append("\r\n").append(body);
    for (std::size_t sent = 0; sent < msg.size();) {
      auto n = ::send(fd_, msg.data() + sent, msg.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail(out, std::string("send: ") + std::strerror(errno));
      sent += static_cast<std::size_t>(n);
    }
    // Headers.
    std::size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!read_more(out, deadline, "before the status line")) return out;
    std::string_view head(buf_.data(), header_end);
    if (!head.starts_with("HTTP/1.1 ") || head.size() < 12) return fail(out, "bad status line: " + std::string(head.substr(0, 40)));
    out.status = static_cast<unsigned>(std::atoi(std::string(head.substr(9, 3)).c_str()));
    long length = -1;
    bool chunked = false;
    for (std::size_t pos = head.find("\r\n"); pos != std::string_view::npos;) {
      auto next = head.find("\r\n", pos + 2);
      auto line = head.substr(pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
      pos = next;
      auto colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      auto name = lower(line.substr(0, colon));
      auto value = lower(trim(line.substr(colon + 1)));
      if (name == "content-length") length = std::atol(value.c_str());
      else if (name == "transfer-encoding" && value.find("chunked") != std::string::npos) chunked = true;
      else if (name == "connection" && value.find("close") != std::string::npos) out.connection_close = true;
    }
    buf_.erase(0, header_end + 4);
    if (chunked) {
      for (;;) {
        std::size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos)
          if (!read_more(out, deadline, "in a chunk header")) return answerless(out);
        auto size = std::strtoul(buf_.substr(0, eol).c_str(), nullptr, 16);
        while (buf_.size() < eol + 2 + size + 2)
          if (!read_more(out, deadline, "in a chunk")) return answerless(out);
        out.body.append(buf_, eol + 2, size);
        buf_.erase(0, eol + 2 + size + 2);
        if (size == 0) break;  // (no trailers from this server)
      }
    } else if (length >= 0) {
      while (buf_.size() < static_cast<std::size_t>(length))
        if (!read_more(out, deadline, "in the body")) return answerless(out);
      out.body = buf_.substr(0, static_cast<std::size_t>(length));
      buf_.erase(0, static_cast<std::size_t>(length));
    } else {
      while (read_more(out, deadline, "", true)) {
      }
      out.error.clear();
      out.body = std::move(buf_);
      buf_.clear();
      out.connection_close = true;
    }
    if (out.connection_close || !keep_alive_) close();
    return out;
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }
  int connections() const { return opened_; }
  // Connections opened after the first: after a `Connection: close`, or found closed when idle.
  int reconnects() const { return opened_ > 0 ? opened_ - 1 : 0; }
  int stale_connections() const { return stale_; }

 private:
  static std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  }
  static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  }

  result& fail(result& out, std::string why) {
    close();
    out.status = 0;
    out.error = std::move(why);
    return out;
  }
  result& answerless(result& out) {
    out.status = 0;
    return out;
  }

  bool peer_closed() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    char c;
    auto n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

  bool connect(result& out) {
    int fd;
    if (!ep_.unix_path.empty()) {
      fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, ep_.unix_path.c_str(), sizeof a.sun_path - 1);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        out.error = std::string("connect: ") + std::strerror(errno);
        ::close(fd);
        return false;
      }
    } else {
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(ep_.port);
      ::inet_pton(AF_INET, ep_.host.c_str(), &a.sin_addr);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        out.error = std::string("connect: ") + std::strerror(errno);
        ::close(fd);
        return false;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    fd_ = fd;
    ++opened_;
    return true;
  }

  // Appends what arrives before `deadline`; false (with out.error set) on EOF, error or timeout.
  bool read_more(result& out, std::chrono::steady_clock::time_point deadline, const char* where, bool eof_ok = false) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        fail(out, std::string("timed out ") + where);
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) continue;
      char chunk[16384];
      auto n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) {
        buf_.append(chunk, static_cast<std::size_t>(n));
        return true;
      }
      if (eof_ok && n == 0) return false;
      fail(out, n == 0 ? std::string("connection closed unanswered ") + where
                       : std::string("recv: ") + std::strerror(errno));
      return false;
    }
  }

  client::endpoint ep_;
  bool keep_alive_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  int opened_ = 0, stale_ = 0;
  std::string buf_;
};

}  // namespace hsmb::test
