// Creating the server's listening sockets: a Unix socket file (stale-file takeover, mode, group),
// a TCP address, or an inherited fd.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "api/http/server_state.h"

namespace hsmb::api {
namespace {

using boost::system::error_code;

std::runtime_error failure(const std::string& what, const std::string& why) {
  return std::runtime_error(what + ": " + why);
}

// Closes a plain fd on scope exit.
struct unique_fd {
  int fd;
  ~unique_fd() {
    if (fd >= 0) ::close(fd);
  }
};

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// Is some process accepting on the socket file at `path`? A refused connection means the file
// is left over from a process that is gone. Non-blocking, so a full backlog cannot hang us.
bool socket_is_live(const std::string& path) {
  unique_fd probe{::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (probe.fd < 0) throw failure("cannot create a probe socket", std::strerror(errno));
  auto addr = unix_address(path);
  if (::connect(probe.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return true;
  if (errno == EAGAIN || errno == EINPROGRESS) return true;  // live, backlog full
  if (errno == ECONNREFUSED) return false;
  throw failure("cannot check existing socket " + path, std::strerror(errno));
}

// Makes `path` free for bind: nothing there, or a stale socket file (removed).
void clear_socket_path(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw failure("cannot listen on " + path, std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) throw std::runtime_error("cannot listen on " + path + ": file exists and is not a socket");
  if (socket_is_live(path)) throw std::runtime_error("another process is listening on " + path);
  if (::unlink(path.c_str()) != 0) throw failure("cannot remove stale socket " + path, std::strerror(errno));
}

gid_t group_id(const std::string& name) {
  std::vector<char> buf(16384);
  group grp{};
  group* found = nullptr;
  int rc = ::getgrnam_r(name.c_str(), &grp, buf.data(), buf.size(), &found);
  if (rc != 0) throw failure("cannot look up group " + name, std::strerror(rc));
  if (found == nullptr) throw std::runtime_error("unknown group " + name);
  return grp.gr_gid;
}

void set_owner_and_mode(const unix_listener_options& options) {
  if (::chmod(options.path.c_str(), options.mode) != 0)
    throw failure("cannot chmod socket " + options.path, std::strerror(errno));
  if (!options.group) return;
  gid_t gid = group_id(*options.group);
  if (::chown(options.path.c_str(), static_cast<uid_t>(-1), gid) != 0)
    throw failure("cannot chgrp socket " + options.path + " to " + *options.group, std::strerror(errno));
}

// "127.0.0.1:8200", "[::1]:8200", "localhost:8200".
boost::asio::ip::tcp::endpoint parse_tcp_address(const std::string& address) {
  auto bad = [&](const char* why) { return std::runtime_error("bad listen address \"" + address + "\": " + why); };
  auto colon = address.rfind(':');
  if (colon == std::string::npos) throw bad("expected HOST:PORT");
  std::string host = address.substr(0, colon);
  std::string port_text = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) throw bad("bad port");
  error_code aec;
  auto ip = boost::asio::ip::make_address(host, aec);
  if (aec) throw bad("bad IP address");
  return {ip, static_cast<std::uint16_t>(port)};
}

void listen_or_throw(stream_acceptor& acceptor, const std::string& what) {
  error_code ec;
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw failure("cannot listen on " + what, ec.message());
}

}  // namespace

stream_acceptor open_unix_acceptor(asio::io_context& io, const unix_listener_options& options) {
  const std::string& path = options.path;
  if (path.empty()) throw std::runtime_error("unix socket path is empty");
  if (path.size() >= sizeof(sockaddr_un::sun_path)) throw std::runtime_error("unix socket path too long: " + path);
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::is_directory(dir))
    throw std::runtime_error("cannot listen on " + path + ": directory " + dir.string() + " does not exist");
  clear_socket_path(path);

  stream_protocol::endpoint endpoint{asio::local::stream_protocol::endpoint(path)};
  stream_acceptor acceptor(io);
  error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (ec) throw failure("cannot bind " + path, ec.message());
  // Permissions are set between bind and listen: until listen, every connect is refused.
  set_owner_and_mode(options);
  listen_or_throw(acceptor, path);
  return acceptor;
}

stream_acceptor open_tcp_acceptor(asio::io_context& io, const std::string& address) {
  stream_protocol::endpoint endpoint{parse_tcp_address(address)};
  stream_acceptor acceptor(io);
  error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (ec) throw failure("cannot bind " + address, ec.message());
  listen_or_throw(acceptor, address);
  return acceptor;
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
  if (ec) return {std::nullopt, "?"};
  const sockaddr* sa = remote.data();
  if (sa->sa_family == AF_UNIX) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return {std::nullopt, "uid ?"};
    return {peer_identity{cred.uid, cred.gid, cred.pid}, "uid " + std::to_string(cred.uid)};
  }
  char text[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, text, sizeof text);
  else ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, text, sizeof text);
  return {std::nullopt, text};
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

namespace {
// Asio opens sockets without SOCK_CLOEXEC: a plain fd is handed on explicitly, never inherited.
int close_on_exec(int fd) {
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}
}  // namespace

int open_unix_listener_fd(const unix_listener_options& options) {
  asio::io_context io;
  return close_on_exec(open_unix_acceptor(io, options).release());
}

int open_tcp_listener_fd(const std::string& address) {
  asio::io_context io;
  return close_on_exec(open_tcp_acceptor(io, address).release());
}

}  // namespace hsmb::api
