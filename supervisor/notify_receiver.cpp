#include "supervisor/notify_receiver.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/datagram_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace hsmb::supervisor {
namespace asio = boost::asio;
using datagram = asio::local::datagram_protocol;

struct notify_receiver::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& io, std::function<void(std::string_view)> cb) : socket(io), on_message(std::move(cb)) {}
  datagram::socket socket;
  std::function<void(std::string_view)> on_message;
  std::string address;

  // Waits for readability, then takes each datagram with recvmsg to read its sender's pid
  // (SO_PASSCRED): only the generation's own process may speak for it.
  asio::awaitable<void> receive() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec] = co_await socket.async_wait(datagram::socket::wait_read, asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted || !socket.is_open()) co_return;
      while (read_one()) {
      }
    }
  }

  bool read_one() {
    std::array<char, 4096> buf;
    iovec io{buf.data(), buf.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    msghdr msg{};
    msg.msg_iov = &io;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(socket.native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return false;
    pid_t sender = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
        sender = reinterpret_cast<ucred*>(CMSG_DATA(c))->pid;
    if (on_message && sender > 0 && sender == expected_pid)
      on_message(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    return true;
  }
  pid_t expected_pid = 0;
};

notify_receiver::notify_receiver(asio::io_context& io, std::function<void(std::string_view)> on_message)
    : impl_(std::make_shared<impl>(io, std::move(on_message))) {
  static int next = 0;
  impl_->address = "@hsm-supervisor/" + std::to_string(::getpid()) + "/" + std::to_string(++next);
  std::string name = impl_->address;
  name[0] = '\0';  // abstract namespace: no file to clean up, gone with the socket
  boost::system::error_code ec;
  impl_->socket.open(datagram(), ec);
  if (!ec) impl_->socket.bind(datagram::endpoint(name), ec);
  int on = 1;
  if (!ec && ::setsockopt(impl_->socket.native_handle(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
    ec.assign(errno, boost::system::system_category());
  if (ec) throw std::runtime_error("cannot create notify socket " + impl_->address + ": " + ec.message());
  asio::co_spawn(io, impl_->receive(), asio::detached);
}

notify_receiver::~notify_receiver() {
  impl_->on_message = nullptr;
  boost::system::error_code ec;
  impl_->socket.close(ec);
}

const std::string& notify_receiver::address() const { return impl_->address; }

void notify_receiver::accept_from(pid_t pid) { impl_->expected_pid = pid; }

}  // namespace hsmb::supervisor
