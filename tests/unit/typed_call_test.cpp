// broker/typed_call.h over a stand-in channel: the request goes out encoded as its op's request,
// the extra arguments reach the channel's call, the reply comes back decoded, and a reply that
// does not decode, or a failed call, is an hsm_error.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "broker/typed_call.h"

using namespace hsmb;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// Records what it was asked and answers with `answer`, as worker_client::call would.
struct fake_channel {
  std::optional<wire::op> op;
  bytes payload;
  std::chrono::milliseconds budget{};
  int pace = 0;
  hsm_result<bytes> answer;

  asio::awaitable<hsm_result<bytes>> call(wire::op o, byte_view p, std::chrono::milliseconds b, int pc = 0) {
    op = o;
    payload.assign(p.begin(), p.end());
    budget = b;
    pace = pc;
    co_return answer;
  }
};

template <class T>
T run(asio::awaitable<T> a) {
  asio::io_context io;
  std::optional<T> out;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr, T value) { out = std::move(value); });
  io.run();
  REQUIRE(out.has_value());
  return std::move(*out);
}

template <wire::op O>
bytes reply_bytes(const wire::reply_of<O>& reply) {
  bytes out;
  wire::encode_reply<O>(out, reply);
  return out;
}

}  // namespace

TEST_CASE("typed_call sends the op's request and extra arguments, and decodes the op's reply") {
  fake_channel channel;
  channel.answer = reply_bytes<wire::op::sign>({{1, 2, 3}});
  wire::sign_request request{"hsmb/k/v1", sign_mechanism::ecdsa, hash_alg::sha256, {9, 9}};
  auto reply = run(typed_call<wire::op::sign>(channel, request, 250ms, 7));
  REQUIRE(reply);
  CHECK(reply->value == bytes{1, 2, 3});
  CHECK(channel.op == wire::op::sign);
  auto sent = wire::encode_request<wire::op::sign>(request);
  CHECK(channel.payload == bytes(sent.begin(), sent.end()));
  CHECK(channel.budget == 250ms);
  CHECK(channel.pace == 7);
}

TEST_CASE("the request is encoded when typed_call is called: it need not live until the call runs") {
  fake_channel channel;
  channel.answer = reply_bytes<wire::op::destroy_objects>({4});
  auto pending = [&] {
    wire::label_request request{"hsmb/gone/"};
    return typed_call<wire::op::destroy_objects>(channel, request, 1s);
  }();
  auto reply = run(std::move(pending));
  REQUIRE(reply);
  CHECK(reply->count == 4u);
  auto sent = wire::decode_request<wire::op::destroy_objects>(channel.payload);
  REQUIRE(sent);
  CHECK(sent->label == "hsmb/gone/");
}

TEST_CASE("a reply that does not decode is a malformed_reply fault; the channel's errors pass as they are") {
  fake_channel channel;
  wire::empty_payload none;
  channel.answer = bytes{1};  // probe answers nothing
  auto malformed = run(typed_call<wire::op::probe>(channel, none, 1s));
  REQUIRE_FALSE(malformed);
  CHECK(malformed.error().where == fault::malformed_reply);
  CHECK(malformed.error().message == "malformed reply from worker");

  channel.answer = std::unexpected(hsm_error{0x30, "device gone"});
  auto failed = run(typed_call<wire::op::probe>(channel, none, 1s));
  REQUIRE_FALSE(failed);
  CHECK(failed.error().ckr == 0x30u);
  CHECK(failed.error().message == "device gone");
}

TEST_CASE("take_reply wipes the raw bytes of a secret reply once decoded, and only those") {
  auto plaintext = reply_bytes<wire::op::decrypt>({secure_bytes{'s', 'e', 'c'}});
  auto plain = wire::take_reply<wire::op::decrypt>(plaintext);
  REQUIRE(plain);
  CHECK(plain->value == secure_bytes{'s', 'e', 'c'});
  CHECK(plaintext == bytes(plaintext.size(), 0));

  auto signature = reply_bytes<wire::op::sign>({{5, 6}});
  auto kept = signature;
  CHECK(wire::take_reply<wire::op::sign>(signature));
  CHECK(signature == kept);
}
