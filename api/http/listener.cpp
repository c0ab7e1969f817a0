// The server's listening sockets under Asio: made by common/listen_socket.h, or inherited; and
// the names of sockets and peers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "api/http/server_state.h"
#include "common/listen_socket.h"

namespace hsmb::api {
namespace {

using boost::system::error_code;

std::runtime_error failure(const std::string& what, const std::string& why) {
  return std::runtime_error(what + ": " + why);
}

// A socket common/listen_socket.h has just made, put under Asio (or closed).
stream_acceptor take_acceptor(asio::io_context& io, int fd) {
  try {
    return adopt_acceptor(io, fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
}

}  // namespace

stream_acceptor open_unix_acceptor(asio::io_context& io, const unix_listener_options& options) {
  return take_acceptor(io, open_unix_listener_fd(options));
}

stream_acceptor open_tcp_acceptor(asio::io_context& io, const std::string& address) {
  return take_acceptor(io, open_tcp_listener_fd(address));
}

stream_acceptor adopt_acceptor(asio::io_context& io, int fd) {
  const std::string what = "inherited fd " + std::to_string(fd);
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) throw failure(what, std::strerror(errno));
  int type = 0, listening = 0;
  socklen_t opt_len = sizeof type;
  ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &opt_len);
  opt_len = sizeof listening;
  ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &opt_len);
  if (type != SOCK_STREAM || !listening) throw std::runtime_error(what + " is not a listening stream socket");

  int family = addr.ss_family;
  if (family != AF_UNIX && family != AF_INET && family != AF_INET6)
    throw std::runtime_error(what + ": unsupported address family " + std::to_string(family));
  stream_protocol protocol(family, family == AF_UNIX ? 0 : IPPROTO_TCP);
  stream_acceptor acceptor(io);
  error_code ec;
  acceptor.assign(protocol, fd, ec);
  if (ec) throw failure(what, ec.message());
  return acceptor;
}

std::string describe(const stream_acceptor& acceptor) {
  error_code ec;
  auto endpoint = acceptor.local_endpoint(ec);
  if (ec) return "?";
  const sockaddr* sa = endpoint.data();
  if (sa->sa_family == AF_UNIX) {
    auto* un = reinterpret_cast<const sockaddr_un*>(sa);
    return "unix:" + std::string(un->sun_path, ::strnlen(un->sun_path, sizeof un->sun_path));
  }
  char text[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return "tcp:" + std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
  }
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
  ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
  return "tcp:[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

connecting_peer identify_peer(stream_protocol::socket& socket) {
  error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (ec) return {std::nullopt, "?", "?"};
  const sockaddr* sa = remote.data();
  if (sa->sa_family == AF_UNIX) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return {std::nullopt, "uid ?"};
    return {peer_identity{cred.uid, cred.gid, cred.pid}, "uid " + std::to_string(cred.uid), "unix"};
  }
  char text[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    std::string address(text);  // built piecewise: GCC 12's -Wrestrict false positive (bug 105329)
    address += ':';
    address += std::to_string(ntohs(in->sin_port));
    return {std::nullopt, text, std::move(address)};
  }
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
  ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
  auto port = ntohs(in6->sin6_port);
  std::string address = "[";
  address += text;
  address += "]:";
  address += std::to_string(port);
  return {std::nullopt, text, std::move(address)};
}

std::uint16_t port_of(const stream_acceptor& acceptor) {
  error_code ec;
  auto endpoint = acceptor.local_endpoint(ec);
  if (ec) return 0;
  const sockaddr* sa = endpoint.data();
  if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  if (sa->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  return 0;
}

}  // namespace hsmb::api
