// A small blocking HTTP/1.1 client over a Unix socket, for a module loaded into any process: no
// threads, no event loop; every wait is a poll() bounded by a deadline. Keep-alive connections are
// pooled so a signing loop costs no connect per call.
#pragma once

#include <chrono>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace hsmb::p11 {

using clock = std::chrono::steady_clock;

struct http_response {
  unsigned status = 0;
  std::string body;
};

// Why no answer came. `retryable`: nothing reached the broker or nothing came back before the
// connection ended (a broker restarting or handing over); a timeout is not retried.
struct transport_error {
  std::string message;
  bool retryable = false;
};

class connection {
 public:
  connection() = default;
  explicit connection(int fd) : fd_(fd) {}
  ~connection();
  connection(connection&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  connection& operator=(connection&& o) noexcept;
  int fd() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }
  // Drops the descriptor without shutdown(): after fork() a child must not touch the parent's stream.
  void forget_after_fork();

 private:
  int fd_ = -1;
};

std::expected<connection, transport_error> connect_unix(const std::string& path, clock::time_point deadline);

// One request on `c`. A close or reset before any byte of the answer is retryable: an idle
// keep-alive close, or a broker draining or restarting (every request the module sends may be repeated).
std::expected<http_response, transport_error> exchange(connection& c, std::string_view request,
                                                       clock::time_point deadline, bool& keep_alive);

}  // namespace hsmb::p11
