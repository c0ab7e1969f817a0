// Runs one coroutine to its end on a private io_context, for unit tests of awaitable code.
#pragma once

#include <exception>
#include <optional>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace hsmb::test {

template <class T>
T run_awaitable(boost::asio::awaitable<T> work) {
  boost::asio::io_context io;
  std::optional<T> out;
  std::exception_ptr failed;
  boost::asio::co_spawn(io, std::move(work), [&](std::exception_ptr e, T value) {
    failed = e;
    if (!e) out = std::move(value);
  });
  io.run();
  if (failed) std::rethrow_exception(failed);
  return std::move(*out);
}

}  // namespace hsmb::test
