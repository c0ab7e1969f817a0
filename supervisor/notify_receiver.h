// A private sd_notify socket for one broker generation: a datagram socket in the abstract
// namespace, whose messages ("READY=1", "WATCHDOG=1", "STATUS=...") go to a callback.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace boost::asio {
class io_context;
}

namespace hsmb::supervisor {

class notify_receiver {
 public:
  // Throws std::runtime_error when the socket cannot be made.
  notify_receiver(boost::asio::io_context& io, std::function<void(std::string_view)> on_message);
  ~notify_receiver();
  notify_receiver(const notify_receiver&) = delete;
  notify_receiver& operator=(const notify_receiver&) = delete;

  // The NOTIFY_SOCKET value for the broker: "@hsm-supervisor/<pid>/<n>".
  const std::string& address() const;
  // Only datagrams sent by this process are passed on (an abstract socket has no permissions:
  // any local process could otherwise send READY or WATCHDOG).
  void accept_from(pid_t pid);

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace hsmb::supervisor
