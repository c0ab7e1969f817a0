// The broker's side of the protocol: a real worker_client (broker/worker_client.cpp) talks to a
// worker that answers with the fuzzer's bytes (fake_worker.cpp), as a buggy or compromised
// worker might. The broker must not crash, hang or misbehave: it starts the worker, makes one
// call of each kind in turn through the protocol table (broker/typed_call.h, which decodes each
// answer as the op's reply type) and uses each answer as its callers do, until the worker is gone.
//
// Input: the byte stream the worker writes after reading the hello (frames answering ids 1, 2,
// ...: the hello is id 1, then one id per call below, in order).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "broker/keys/metadata.h"
#include "broker/keys/public_key.h"
#include "broker/typed_call.h"
#include "broker/worker_client.h"
#include "tests/fuzz/fuzz_support.h"

using namespace hsmb;
namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

void use_public_key(const public_key_blob& blob) {
  for (auto t : {key_type::ecdsa_p256, key_type::ecdsa_p384, key_type::ed25519, key_type::rsa_2048})
    if (auto k = make_public_key(blob, t)) FUZZ_CHECK(public_key_fingerprint(*k).size() == 32);
}

// What the callers do with a successful answer, once typed_call has decoded it.
void use(const public_key_blob& k) { use_public_key(k); }
void use(const wrapped_key& w) { use_public_key(w.pub); }
void use(const wire::metadata_list_payload& list) {
  for (auto& r : list.records) (void)decode_metadata(r.value);
}
template <class Reply>
void use(const Reply&) {}

// One call through the protocol table; false once the worker is gone.
template <wire::op O>
asio::awaitable<bool> ask(worker_client& client, wire::request_of<O> request) {
  auto r = co_await typed_call<O>(client, request, milliseconds(5000));
  if (r) use(*r);
  co_return client.alive();
}

using call = std::function<asio::awaitable<bool>(worker_client&)>;

// One call of each kind, in the order the seeds answer them.
std::vector<call> calls() {
  using wire::op;
  return {
      [](worker_client& c) { return ask<op::probe>(c, {}); },
      [](worker_client& c) { return ask<op::random>(c, {32}); },
      [](worker_client& c) { return ask<op::generate_key>(c, {canary_label, key_type::ecdsa_p256}); },
      [](worker_client& c) { return ask<op::public_key>(c, {"hsmb/k/v1"}); },
      [](worker_client& c) { return ask<op::list_metadata>(c, {}); },
      [](worker_client& c) { return ask<op::encrypt>(c, {"hsmb/k/v1", secure_bytes{'p', 'l', 'a', 'i', 'n'}, {}}); },
      [](worker_client& c) { return ask<op::decrypt>(c, {"hsmb/k/v1", secure_bytes(40, 1), {}}); },
      [](worker_client& c) { return ask<op::sign>(c, {"hsmb/k/v1", sign_mechanism::ecdsa, hash_alg::sha256, bytes(32)}); },
      [](worker_client& c) { return ask<op::hmac>(c, {"hsmb/k/v1/hmac", hash_alg::sha256, secure_bytes{'m'}}); },
      [](worker_client& c) { return ask<op::key_check>(c, {"hsmb/k/v1", key_type::aes256_gcm96}); },
      [](worker_client& c) { return ask<op::export_key>(c, {"hsmb/k/v1", key_type::rsa_2048}); },
      [](worker_client& c) { return ask<op::destroy_objects>(c, {"hsmb/k/"}); },
      [](worker_client& c) { return ask<op::cluster_key_check>(c, {}); },
      [](worker_client& c) { return ask<op::create_transport_key>(c, {}); },
  };
}

asio::awaitable<void> session(asio::io_context& io, const std::string& replies_path, bool& done) {
  worker_client client(io, worker_launch{HSMB_FUZZ_FAKE_WORKER, {{"HSMB_FUZZ_REPLIES", replies_path}}, "fuzz"});
  member_settings settings{"fake.so", "token", std::nullopt, "1234", 1, {}};
  auto token = co_await client.start(settings, milliseconds(5000));
  if (token) {
    auto asks = calls();
    for (auto& ask_one : asks)
      if (!co_await ask_one(client)) break;
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
