// A worker call typed by the protocol table (hsm_backends/wire/protocol.h, which shows a call site
// before and after): the request is the op's request type, the answer its reply type. Works with
// any channel that has `awaitable<hsm_result<bytes>> call(wire::op, byte_view, extra...)`:
// worker_client and member.
#pragma once

#include <utility>

#include <boost/asio/awaitable.hpp>

#include "hsm_backends/wire/protocol.h"

namespace hsmb {
namespace detail {

// Owns the encoded request: a channel's call copies its payload only once it runs, when awaited.
template <wire::op O, class Channel, class Payload, class... Extra>
boost::asio::awaitable<hsm_result<wire::reply_of<O>>> send_typed(Channel& channel, Payload payload, Extra... extra) {
  auto raw = co_await channel.call(O, payload, extra...);
  if (!raw) co_return std::unexpected(std::move(raw.error()));
  auto reply = wire::take_reply<O>(*raw);  // wipes *raw when the reply is a secret
  if (!reply) co_return std::unexpected(wire::malformed_reply());
  co_return std::move(*reply);
}

}  // namespace detail

// Encodes the request at once (into wiping memory when it holds a secret), so it need not outlive
// this call; `extra` goes to the channel's call as given (deadlines, pace). The channel's errors
// come back as they are; a reply that does not decode as the op's reply is a fault::malformed_reply.
template <wire::op O, class Channel, class... Extra>
boost::asio::awaitable<hsm_result<wire::reply_of<O>>> typed_call(Channel& channel, const wire::request_of<O>& request,
                                                                 Extra... extra) {
  return detail::send_typed<O>(channel, wire::encode_request<O>(request), extra...);
}

}  // namespace hsmb
