#include "broker/known_answer.h"

#include <openssl/rand.h>

#include "broker/keys/public_key.h"
#include "broker/keys/signature.h"
#include "broker/typed_call.h"

namespace hsmb {
namespace {

constexpr std::chrono::seconds canary_generation_timeout{60};

hsm_error failed(std::string why) { return broker_fault(fault::known_answer_failed, "known-answer check failed: " + std::move(why)); }

// The canary's public key, generating the key pair on the member's first start.
boost::asio::awaitable<hsm_result<public_key_blob>> canary_public_key(worker_channel& worker, std::chrono::milliseconds timeout) {
  wire::label_request label{canary_label};
  auto reply = co_await typed_call<wire::op::public_key>(worker, label, timeout);
  if (!reply && reply.error().ckr == ckr_object_not_found) {
    wire::generate_key_request generate{canary_label, key_type::ecdsa_p256};
    reply = co_await typed_call<wire::op::generate_key>(worker, generate, canary_generation_timeout);
  }
  if (!reply && reply.error().where == fault::malformed_reply) co_return std::unexpected(failed("malformed public key reply"));
  if (!reply) co_return std::unexpected(reply.error());
  co_return std::move(*reply);
}

}  // namespace

namespace {

enum class verdict { verified, wrong, changed };

// Signs a fresh digest with the canary and verifies it against the canary's public key.
boost::asio::awaitable<hsm_result<verdict>> sign_and_verify(worker_channel& worker, std::chrono::milliseconds call_timeout) {
  auto blob = co_await canary_public_key(worker, call_timeout);
  if (!blob) co_return std::unexpected(blob.error());
  auto key = make_public_key(*blob, key_type::ecdsa_p256);
  if (!key) co_return std::unexpected(failed("the canary's public key is unreadable"));
  bytes challenge(32);
  RAND_bytes(challenge.data(), static_cast<int>(challenge.size()));  // fresh: no replayed answer passes
  auto digest = compute_digest(hash_alg::sha256, challenge);
  wire::sign_request request{canary_label, sign_mechanism::ecdsa, hash_alg::sha256, *digest};
  auto reply = co_await typed_call<wire::op::sign>(worker, request, call_timeout);
  // No private half: another broker's prune or generation changed the pair after the read.
  if (!reply && reply.error().ckr == ckr_object_not_found) co_return verdict::changed;
  if (!reply && reply.error().where != fault::malformed_reply) co_return std::unexpected(reply.error());
  auto der = reply ? ecdsa_raw_to_der(reply->value) : std::nullopt;  // a malformed reply is a wrong answer
  bool ok = der && verify_signature(*key, key_type::ecdsa_p256, hash_alg::sha256, sign_mechanism::ecdsa, *digest, *der);
  co_return ok ? verdict::verified : verdict::wrong;
}

}  // namespace

boost::asio::awaitable<hsm_result<void>> known_answer_check(worker_channel& worker, std::chrono::milliseconds call_timeout) {
  // A wrong answer once may be another broker pruning duplicate canaries between the two reads
  // (the pair changed under us): the pair is read afresh and asked again. A token that answers
  // wrong twice computes wrong. A private half gone at the sign is that prune for certain, and
  // costs no chance: several nodes starting together may each change the pair once.
  int wrong = 0, changed = 0;
  while (wrong < 2 && changed < 4) {
    auto v = co_await sign_and_verify(worker, call_timeout);
    if (!v) co_return std::unexpected(v.error());
    if (*v == verdict::verified) co_return hsm_result<void>{};
    ++(*v == verdict::wrong ? wrong : changed);
  }
  if (wrong < 2) co_return std::unexpected(failed("the canary pair changed at every attempt (other brokers on this token pruning)"));
  co_return std::unexpected(failed("the canary signature does not verify"));
}

}  // namespace hsmb
