#include "supervisor/notify_receiver.h"

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

  asio::awaitable<void> receive() {
    auto self = shared_from_this();
    std::array<char, 4096> buf;
    for (;;) {
      auto [ec, n] = co_await socket.async_receive(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted || !socket.is_open()) co_return;
      if (!ec && on_message) on_message(std::string_view(buf.data(), n));
    }
  }
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
  if (ec) throw std::runtime_error("cannot create notify socket " + impl_->address + ": " + ec.message());
  asio::co_spawn(io, impl_->receive(), asio::detached);
}

notify_receiver::~notify_receiver() {
  impl_->on_message = nullptr;
  boost::system::error_code ec;
  impl_->socket.close(ec);
}

const std::string& notify_receiver::address() const { return impl_->address; }

}  // namespace hsmb::supervisor
