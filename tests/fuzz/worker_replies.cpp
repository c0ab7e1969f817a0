// The broker's side of the protocol: a real worker_client (broker/worker_client.cpp) talks to a
// worker that answers with the fuzzer's bytes (fake_worker.cpp), as a buggy or compromised
// worker might. The broker must not crash, hang or misbehave: it starts the worker, makes one
// call of each kind in turn and decodes each answer as its callers do (member, key_service,
// known_answer, enrollment), until the worker is gone.
//
// Input: the byte stream the worker writes after reading the hello (frames answering ids 1, 2,
// ...: the hello is id 1, then one id per call below, in order).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "broker/keys/metadata.h"
#include "broker/keys/public_key.h"
#include "broker/worker_client.h"
#include "hsm_backends/wire/messages.h"
#include "tests/fuzz/fuzz_support.h"

using namespace hsmb;
namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

struct call_spec {
  wire::op op;
  bytes payload;
};

std::vector<call_spec> calls() {
  std::vector<call_spec> out;
  auto add = [&](wire::op op, auto encode) {
    bytes p;
    encode(p);
    out.push_back({op, std::move(p)});
  };
  add(wire::op::probe, [](bytes&) {});
  add(wire::op::random, [](bytes& b) { wire::encode_random(b, 32); });
  add(wire::op::generate_key, [](bytes& b) { wire::encode_generate_key(b, canary_label, key_type::ecdsa_p256); });
  add(wire::op::public_key, [](bytes& b) { wire::encode_label(b, "hsmb/k/v1"); });
  add(wire::op::list_metadata, [](bytes&) {});
  add(wire::op::encrypt, [](bytes& b) { wire::encode_cipher(b, "hsmb/k/v1", as_bytes("plaintext"), {}); });
  add(wire::op::decrypt, [](bytes& b) { wire::encode_cipher(b, "hsmb/k/v1", bytes(40, 1), {}); });
  add(wire::op::sign, [](bytes& b) { wire::encode_sign(b, "hsmb/k/v1", sign_mechanism::ecdsa, hash_alg::sha256, bytes(32)); });
  add(wire::op::hmac, [](bytes& b) { wire::encode_hmac(b, "hsmb/k/v1/hmac", hash_alg::sha256, as_bytes("m")); });
  add(wire::op::key_check, [](bytes& b) { wire::encode_generate_key(b, "hsmb/k/v1", key_type::aes256_gcm96); });
  add(wire::op::export_key, [](bytes& b) { wire::encode_generate_key(b, "hsmb/k/v1", key_type::rsa_2048); });
  add(wire::op::destroy_objects, [](bytes& b) { wire::encode_label(b, "hsmb/k/"); });
  add(wire::op::cluster_key_check, [](bytes&) {});
  add(wire::op::create_transport_key, [](bytes&) {});
  return out;
}

void use_public_key(const public_key_blob& blob) {
  for (auto t : {key_type::ecdsa_p256, key_type::ecdsa_p384, key_type::ed25519, key_type::rsa_2048})
    if (auto k = make_public_key(blob, t)) FUZZ_CHECK(public_key_fingerprint(*k).size() == 32);
}

// What the callers do with a successful answer.
void decode_answer(wire::op op, const bytes& reply) {
  switch (op) {
    case wire::op::generate_key:
    case wire::op::public_key:
    case wire::op::create_transport_key:
      if (auto k = wire::decode_public_key(reply)) use_public_key(*k);
      break;
    case wire::op::list_metadata:
      if (auto list = wire::decode_metadata_list(reply))
        for (auto& r : *list) (void)decode_metadata(r.value);
      break;
    case wire::op::export_key:
      if (auto w = wire::decode_wrapped_key(reply)) use_public_key(w->pub);
      break;
    case wire::op::destroy_objects:
      (void)wire::decode_count(reply);
      break;
    case wire::op::random:
    case wire::op::decrypt: {
      auto b = wire::decode_blob<secure_bytes>(reply);
      (void)b;
      break;
    }
    default:
      (void)wire::decode_blob(reply);
  }
}

asio::awaitable<void> session(asio::io_context& io, const std::string& replies_path, bool& done) {
  worker_client client(io, worker_launch{HSMB_FUZZ_FAKE_WORKER, {{"HSMB_FUZZ_REPLIES", replies_path}}, "fuzz"});
  member_settings settings{"fake.so", "token", std::nullopt, "1234", 1, {}};
  auto token = co_await client.start(settings, milliseconds(5000));
  if (token) {
    for (auto& c : calls()) {
      auto r = co_await client.call(c.op, c.payload, milliseconds(5000));
      if (r) decode_answer(c.op, *r);
      if (!client.alive()) break;
    }
    // Whatever happened, the client gives a clear answer and no worker is left behind.
    auto after = co_await client.call(wire::op::probe, {}, milliseconds(5000));
    (void)after;
  }
  client.kill("done");
  FUZZ_CHECK(!client.alive());
  FUZZ_CHECK(client.in_flight() == 0);
  done = true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static asio::io_context io;
  static const std::string path = [] {
    ::signal(SIGPIPE, SIG_IGN);
    const char* tmp = std::getenv("TMPDIR");
    return std::string(tmp && *tmp ? tmp : "/tmp") + "/hsmb-fuzz-replies-" + std::to_string(::getpid());
  }();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  bool done = false;
  asio::co_spawn(io, session(io, path, done), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);  // an exception from the broker's code is a finding
  });
  io.restart();
  while (!done && io.run_one() > 0) {
  }
  FUZZ_CHECK(done);
  io.restart();
  io.poll();  // what the ended worker left queued (its read loop finishing)
  return 0;
}
