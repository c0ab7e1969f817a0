#include "api/auth/peer_unit.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>

namespace hsmb::api {
namespace {

// An fd closed on scope exit.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

std::string first_service_under_system_slice(std::string_view path) {
  constexpr std::string_view slice = "/system.slice/";
  if (!path.starts_with(slice)) return {};
  path.remove_prefix(slice.size());
  auto seg = path.substr(0, path.find('/'));
  return seg.ends_with(".service") ? std::string(seg) : std::string();
}

}  // namespace

std::string unit_from_cgroup(std::string_view text) {
  std::string v1;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    // "ID:CONTROLLERS:PATH", split at the first two colons: a path may hold colons of its own
    // (a cgroup named "x:name=systemd:" must not pass for systemd's line).
    auto first = line.find(':');
    auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    auto id = line.substr(0, first), controllers = line.substr(first + 1, second - first - 1);
    auto path = line.substr(second + 1);
    // The kernel prints "0::/" even where systemd runs in legacy mode (v1 only, as in many
    // containers): the unified root names nothing, and the name=systemd line decides.
    if (id == "0" && controllers.empty() && path != "/") return first_service_under_system_slice(path);
    if (controllers == "name=systemd" && v1.empty()) v1 = first_service_under_system_slice(path);
  }
  return v1;
}

// Pid reuse: SO_PEERCRED's pid was the peer's at connect(). If that process has exited, its pid
// may name another process now. We pin a process with pidfd_open, read its cgroup through a
// /proc/<pid> directory fd opened after the pidfd, and then check the pidfd's process is still
// alive (pidfd_send_signal with signal 0): the directory and the text are then the pinned
// process's. The pinned process could still be a newcomer that got the pid between connect() and
// pidfd_open; we refuse it unless it runs as the peer's uid (owner of /proc/<pid>), so at worst a
// process of the same user, on a recycled pid, within one connection's life, is taken for its
// predecessor. Without pidfd_open (Linux < 5.3) the same checks run on the directory fd alone.
std::string peer_unit(pid_t pid, uid_t uid) {
  if (pid <= 0) return {};
  fd_guard pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
  auto dir_name = "/proc/" + std::to_string(pid);
  fd_guard dir{::open(dir_name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir.fd < 0) return {};
  struct stat st {};
  if (::fstat(dir.fd, &st) != 0 || st.st_uid != uid) return {};
  fd_guard file{::openat(dir.fd, "cgroup", O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) return {};
  std::array<char, 4096> buf;
  std::string text;
  ssize_t n = 0;
  while (text.size() < 65536 && (n = ::read(file.fd, buf.data(), buf.size())) > 0) text.append(buf.data(), static_cast<std::size_t>(n));
  if (pidfd.fd >= 0 && ::syscall(SYS_pidfd_send_signal, pidfd.fd, 0, nullptr, 0) != 0) return {};
  return unit_from_cgroup(text);
}

}  // namespace hsmb::api
