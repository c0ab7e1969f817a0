// Relay processes for the latency floor; see relay_chain.h.
#include "bench/relay_chain.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/fd_io.h"

namespace hsmb::bench {
namespace {

constexpr std::size_t max_message = 64 * 1024;

// A relay: what comes from upstream goes downstream, and the answer back up; the last relay
// (no downstream) echoes. Async-signal-safe calls only: it runs in a forked child.
[[noreturn]] void relay(int up, int down) {
  static char buf[max_message];
  for (;;) {
    ssize_t n = ::read(up, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(0);
    auto size = static_cast<std::size_t>(n);
    if (down >= 0 && (!write_all(down, buf, size) || !read_exactly(down, buf, size))) ::_exit(1);
    if (!write_all(up, buf, size)) ::_exit(1);
  }
}

}  // namespace

std::expected<std::unique_ptr<relay_chain>, std::string> relay_chain::start(unsigned hops) {
  // pairs[i] joins the caller (i = 0) or relay i to relay i + 1.
  std::vector<int> near(hops, -1), far(hops, -1);
  // On failure: the relays already started see end of file and exit, and ~relay_chain reaps them.
  auto fail = [&](const char* what) {
    std::string message = std::string(what) + ": " + std::strerror(errno);
    for (unsigned i = 0; i < hops; ++i) {
      if (near[i] >= 0) ::close(near[i]);
      if (far[i] >= 0) ::close(far[i]);
    }
    return std::unexpected(message);
  };
  for (unsigned i = 0; i < hops; ++i) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return fail("socketpair");
    near[i] = sv[0];
    far[i] = sv[1];
  }
  std::unique_ptr<relay_chain> chain(new relay_chain);
  for (unsigned i = 0; i < hops; ++i) {
    pid_t pid = ::fork();
    if (pid < 0) return fail("fork");
    if (pid == 0) {
      int up = far[i], down = i + 1 < hops ? near[i + 1] : -1;
      for (unsigned j = 0; j < hops; ++j) {
        if (far[j] != up) ::close(far[j]);
        if (near[j] != down) ::close(near[j]);
      }
      relay(up, down);
    }
    chain->pids_.push_back(pid);
  }
  chain->fd_ = near[0];
  for (unsigned i = 0; i < hops; ++i) {
    ::close(far[i]);
    if (i > 0) ::close(near[i]);
  }
  return chain;
}

relay_chain::~relay_chain() {
  ::close(fd_);
  for (pid_t pid : pids_) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

call_fn relay_chain::make_call(std::size_t size) {
  return [this, message = std::string(std::min(size, max_message), 'x')]() mutable -> std::optional<std::string> {
    if (!write_all(fd_, message.data(), message.size()) || !read_exactly(fd_, message.data(), message.size()))
      return std::string("the relay chain broke: ") + std::strerror(errno);
    return std::nullopt;
  };
}

}  // namespace hsmb::bench
