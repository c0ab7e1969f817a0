// Plain POSIX calls, the ones Asio's acceptor made before (socket, bind, listen with SOMAXCONN):
// the supervisor makes its sockets without Asio.
#include "common/listen_socket.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>
#include <vector>

namespace hsmb {
namespace {

std::runtime_error failure(const std::string& what, const std::string& why) {
  return std::runtime_error(what + ": " + why);
}

// errno of the call that just failed, read before anything else can change it.
std::runtime_error system_failure(const std::string& what) {
  return failure(what, std::strerror(errno));
}

// Closes a plain fd on scope exit, unless released.
struct unique_fd {
  int fd;
  ~unique_fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
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

// An IPv4 or IPv6 address and a port, as bind takes them.
struct tcp_address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family() const { return storage.ss_family; }
  const sockaddr* data() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// "127.0.0.1:8200", "[::1]:8200", "localhost:8200".
tcp_address parse_tcp_address(const std::string& address) {
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
  tcp_address out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    out.length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    out.length = sizeof(sockaddr_in6);
  } else {
    throw bad("bad IP address");
  }
  return out;
}

void listen_or_throw(int fd, const std::string& what) {
  if (::listen(fd, SOMAXCONN) != 0) throw system_failure("cannot listen on " + what);
}

}  // namespace

int open_unix_listener_fd(const unix_listener_options& options) {
  const std::string& path = options.path;
  if (path.empty()) throw std::runtime_error("unix socket path is empty");
  if (path.size() >= sizeof(sockaddr_un::sun_path)) throw std::runtime_error("unix socket path too long: " + path);
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::is_directory(dir))
    throw std::runtime_error("cannot listen on " + path + ": directory " + dir.string() + " does not exist");
  clear_socket_path(path);

  auto addr = unix_address(path);
  auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  unique_fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (fd.fd < 0 || ::bind(fd.fd, reinterpret_cast<const sockaddr*>(&addr), length) != 0)
    throw system_failure("cannot bind " + path);
  // Permissions are set between bind and listen: until listen, every connect is refused.
  set_owner_and_mode(options);
  listen_or_throw(fd.fd, path);
  return fd.release();
}

int open_tcp_listener_fd(const std::string& address) {
  auto endpoint = parse_tcp_address(address);
  unique_fd fd{::socket(endpoint.family(), SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP)};
  int on = 1;
  if (fd.fd < 0 || ::setsockopt(fd.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      ::bind(fd.fd, endpoint.data(), endpoint.length) != 0)
    throw system_failure("cannot bind " + address);
  listen_or_throw(fd.fd, address);
  return fd.release();
}

}  // namespace hsmb
