// Small synchronous HTTP/1.1 client for the broker's API (Unix socket or TCP), with keep-alive.
// Used by hsmctl, the test suites and hsm-bench. Free of Beast and Asio.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace hsmb::client {

struct reply {
  unsigned status = 0;
  std::string body;
  bool connection_close = false;  // the server closed the connection after this reply
};

// Where the broker listens: unix_path, or host and port.
struct endpoint {
  std::string unix_path;
  std::string host;
  std::uint16_t port = 0;
};

// "http://127.0.0.1:8200", "http://[::1]:8200", "http://localhost" (port 80), "unix:///path".
std::optional<endpoint> parse_address(std::string_view url);
// The endpoint as a URL, for messages.
std::string to_string(const endpoint& ep);

class broker_client {
 public:
  explicit broker_client(endpoint ep, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~broker_client();
  broker_client(broker_client&&) noexcept;
  broker_client& operator=(broker_client&&) noexcept;

  // Throws std::runtime_error on connection/transport failure or timeout (the message names the
  // endpoint); an HTTP error status is a normal reply. The timeout bounds the whole call.
  reply request(std::string_view method, std::string_view target, std::string_view body = {},
                std::string_view token = {});

  void close();
  // Connections opened so far: shows whether keep-alive held.
  std::size_t connections_opened() const;
  const endpoint& target() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace hsmb::client
