#include "pkcs11_front/http_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <optional>

namespace hsmb::p11 {
namespace {

constexpr std::size_t max_response = 64u << 20;

int ms_left(clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

// Waits for `events` on fd until the deadline: false on timeout or error.
bool wait_for(int fd, short events, clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms_left(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return (x | 0x20) == (y | 0x20); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

struct head {
  unsigned status = 0;
  std::size_t length = 0;
  bool has_length = false, chunked = false, close = false;
};

std::expected<head, transport_error> parse_head(std::string_view text) {
  head h;
  auto eol = text.find("\r\n");
  auto status_line = text.substr(0, eol);
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12)
    return std::unexpected(transport_error{"malformed HTTP status line from the broker"});
  std::from_chars(status_line.data() + 9, status_line.data() + 12, h.status);
  h.close = status_line.starts_with("HTTP/1.0");
  for (auto pos = eol + 2; pos < text.size();) {
    auto end = text.find("\r\n", pos);
    if (end == std::string_view::npos) end = text.size();
    auto line = text.substr(pos, end - pos);
    pos = end + 2;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    auto name = line.substr(0, colon);
    auto value = trim(line.substr(colon + 1));
    if (iequals(name, "content-length")) {
      auto r = std::from_chars(value.data(), value.data() + value.size(), h.length);
      if (r.ec != std::errc{} || h.length > max_response)
        return std::unexpected(transport_error{"bad Content-Length from the broker"});
      h.has_length = true;
    } else if (iequals(name, "transfer-encoding")) {
      h.chunked = value.find("chunked") != std::string_view::npos;
    } else if (iequals(name, "connection")) {
      h.close = h.close || iequals(value, "close");
    }
  }
  return h;
}

// Decodes a complete chunked body; nullopt while more input is needed.
std::optional<std::string> dechunk(std::string_view in, bool& bad) {
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    auto eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos) return std::nullopt;
    std::size_t size = 0;
    auto r = std::from_chars(in.data() + pos, in.data() + eol, size, 16);
    if (r.ptr == in.data() + pos || size > max_response) { bad = true; return std::nullopt; }
    pos = eol + 2;
    if (size == 0) {
      if (in.find("\r\n", pos) == std::string_view::npos) return std::nullopt;  // trailers end
      return out;
    }
    if (in.size() < pos + size + 2) return std::nullopt;
    out.append(in.substr(pos, size));
    pos += size + 2;
  }
}

}  // namespace

connection::~connection() {
  if (fd_ >= 0) ::close(fd_);
}

connection& connection::operator=(connection&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void connection::forget_after_fork() {
  if (fd_ >= 0) ::close(fd_);  // the child's copy only; the parent's stream is unaffected
  fd_ = -1;
}

std::expected<connection, transport_error> connect_unix(const std::string& path, clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return std::unexpected(transport_error{"HSM_BROKER_SOCKET is too long"});
  std::copy(path.begin(), path.end(), addr.sun_path);
  connection c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (c.fd() < 0) return std::unexpected(transport_error{std::string("socket: ") + strerror(errno), true});
  if (::connect(c.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    if (e != EINPROGRESS && e != EAGAIN && e != EINTR)
      return std::unexpected(transport_error{"connect " + path + ": " + strerror(e), true});
    if (!wait_for(c.fd(), POLLOUT, deadline)) return std::unexpected(transport_error{"connect " + path + ": timed out", true});
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return std::unexpected(transport_error{"connect " + path + ": " + strerror(err), true});
  }
  return c;
}

std::expected<http_response, transport_error> exchange(connection& c, std::string_view request,
                                                       clock::time_point deadline, bool& keep_alive) {
  keep_alive = false;
  for (std::size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(c.fd(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) { sent += static_cast<std::size_t>(n); continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(c.fd(), POLLOUT, deadline)) return std::unexpected(transport_error{"sending to the broker timed out"});
      continue;
    }
    // Nothing of the answer can have come: the broker never took the request whole.
    return std::unexpected(transport_error{std::string("send to the broker: ") + strerror(errno), true});
  }
  std::string in;
  std::optional<head> h;
  std::size_t body_at = 0;
  char buf[16384];
  for (;;) {
    if (h) {
      if (h->chunked) {
        bool bad = false;
        auto body = dechunk(std::string_view(in).substr(body_at), bad);
        if (bad) return std::unexpected(transport_error{"malformed chunked body from the broker"});
        if (body) { keep_alive = !h->close; return http_response{h->status, std::move(*body)}; }
      } else if (h->has_length && in.size() - body_at >= h->length) {
        keep_alive = !h->close && in.size() - body_at == h->length;
        return http_response{h->status, in.substr(body_at, h->length)};
      }
    }
    ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
    if (n > 0) {
      in.append(buf, static_cast<std::size_t>(n));
      if (in.size() > max_response) return std::unexpected(transport_error{"answer from the broker is too large"});
      if (!h) {
        auto end = in.find("\r\n\r\n");
        if (end != std::string::npos) {
          auto parsed = parse_head(std::string_view(in).substr(0, end + 2));
          if (!parsed) return std::unexpected(parsed.error());
          h = *parsed;
          body_at = end + 4;
          if (h->status == 204 || h->status == 304) { keep_alive = !h->close; return http_response{h->status, ""}; }
        }
      }
      continue;
    }
    if (n == 0) {
      if (h && !h->chunked && !h->has_length) return http_response{h->status, in.substr(body_at)};
      // Closed before any answer: an idle keep-alive close, or a broker draining or dying.
      bool nothing = in.empty();
      return std::unexpected(transport_error{"the broker closed the connection", nothing});
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_for(c.fd(), POLLIN, deadline)) return std::unexpected(transport_error{"the broker did not answer in time"});
      continue;
    }
    bool nothing = in.empty();
    return std::unexpected(transport_error{std::string("receive from the broker: ") + strerror(errno), nothing});
  }
}

}  // namespace hsmb::p11
