#include "hsm_backends/worker/dispatch.h"

#include <string>

#include "hsm_backends/pkcs11/p11.h"
#include "hsm_backends/wire/protocol.h"

namespace hsmb {
namespace {

using wire::op;
using namespace wire;  // the payload types

template <op>
constexpr bool has_handler = false;

// One handler per op but hello: the backend call the op stands for. Its signature is the table's,
// so a handler for another request or reply type matches no template and does not compile; an op
// without one fails at the static_assert.
template <op O>
hsm_result<reply_of<O>> handle(hsm_backend&, const request_of<O>&) {
  static_assert(has_handler<O>, "this wire::op has no handler in dispatch.cpp");
}

template <class Reply, class T>
hsm_result<Reply> as(hsm_result<T>&& r) {
  if (!r) return std::unexpected(std::move(r.error()));
  return Reply{std::move(*r)};
}

hsm_result<empty_payload> done(hsm_result<void>&& r) {
  if (!r) return std::unexpected(std::move(r.error()));
  return empty_payload{};
}

template <>
hsm_result<empty_payload> handle<op::probe>(hsm_backend& be, const empty_payload&) {
  return done(be.probe());
}
template <>
hsm_result<secret_payload> handle<op::random>(hsm_backend& be, const random_request& r) {
  if (r.size > max_payload - 4) return std::unexpected(hsm_error{CKR_ARGUMENTS_BAD, "random: too many bytes"});
  return as<secret_payload>(be.random(r.size));
}
template <>
hsm_result<public_key_blob> handle<op::generate_key>(hsm_backend& be, const generate_key_request& r) {
  return be.generate_key(r.label, r.type);
}
template <>
hsm_result<public_key_blob> handle<op::public_key>(hsm_backend& be, const label_request& r) {
  return be.public_key(r.label);
}
template <>
hsm_result<count_payload> handle<op::destroy_objects>(hsm_backend& be, const label_request& r) {
  return as<count_payload>(be.destroy_objects(r.label));
}
template <>
hsm_result<metadata_list_payload> handle<op::list_metadata>(hsm_backend& be, const empty_payload&) {
  return as<metadata_list_payload>(be.list_metadata());
}
template <>
hsm_result<empty_payload> handle<op::put_metadata>(hsm_backend& be, const put_metadata_request& r) {
  return done(be.put_metadata(r.name, r.value));
}
template <>
hsm_result<empty_payload> handle<op::delete_metadata>(hsm_backend& be, const label_request& r) {
  return done(be.delete_metadata(r.label));
}
template <>
hsm_result<blob_payload> handle<op::encrypt>(hsm_backend& be, const cipher_request& r) {
  return as<blob_payload>(be.encrypt(r.label, r.data, r.aad));
}
template <>
hsm_result<secret_payload> handle<op::decrypt>(hsm_backend& be, const cipher_request& r) {
  return as<secret_payload>(be.decrypt(r.label, r.data, r.aad));
}
template <>
hsm_result<blob_payload> handle<op::sign>(hsm_backend& be, const sign_request& r) {
  return as<blob_payload>(be.sign(r.label, r.mechanism, r.hash, r.data, r.salt));
}
template <>
hsm_result<blob_payload> handle<op::hmac>(hsm_backend& be, const hmac_request& r) {
  return as<blob_payload>(be.hmac(r.label, r.hash, r.data));
}
template <>
hsm_result<blob_payload> handle<op::key_check>(hsm_backend& be, const generate_key_request& r) {
  return as<blob_payload>(be.key_check_value(r.label, r.type));
}

// Key copies and the cluster-key ceremony.
template <>
hsm_result<wrapped_key> handle<op::export_key>(hsm_backend& be, const generate_key_request& r) {
  return be.export_key(r.label, r.type);
}
template <>
hsm_result<empty_payload> handle<op::import_key>(hsm_backend& be, const import_key_request& r) {
  return done(be.import_key(r.label, r.key));
}
template <>
hsm_result<blob_payload> handle<op::cluster_key_check>(hsm_backend& be, const empty_payload&) {
  return as<blob_payload>(be.cluster_key_check());
}
template <>
hsm_result<empty_payload> handle<op::create_cluster_key>(hsm_backend& be, const empty_payload&) {
  return done(be.create_cluster_key());
}
template <>
hsm_result<public_key_blob> handle<op::create_transport_key>(hsm_backend& be, const empty_payload&) {
  return be.create_transport_key();
}
template <>
hsm_result<blob_payload> handle<op::export_cluster_key>(hsm_backend& be, const public_key_blob& transport) {
  return as<blob_payload>(be.export_cluster_key(transport));
}
template <>
hsm_result<empty_payload> handle<op::import_cluster_key>(hsm_backend& be, const blob_payload& wrapped) {
  return done(be.import_cluster_key(wrapped.value));
}

// The generic part: the payload decoded as O's request, O's handler, its reply encoded.
template <op O>
hsm_result<secure_bytes> run(hsm_backend& be, byte_view payload) {
  if constexpr (O == op::hello) {
    return std::unexpected(hsm_error{ckr_bad_request, "already open"});
  } else {
    auto request = decode_request<O>(payload);
    if (!request) return std::unexpected(bad_request(O));
    auto reply = handle<O>(be, *request);
    if (!reply) return std::unexpected(std::move(reply.error()));
    secure_bytes out;  // replies may carry plaintext or random bytes
    encode_reply<O>(out, *reply);
    return out;
  }
}

}  // namespace

hsm_error bad_request(wire::op o) {
  return {ckr_bad_request, "malformed request payload for op " + std::to_string(static_cast<int>(o))};
}

hsm_result<secure_bytes> dispatch(hsm_backend& backend, wire::op o, byte_view payload) {
  switch (o) {
#define HSMB_WORKER_CASE(name, code) \
  case op::name: return run<op::name>(backend, payload);
    HSMB_WIRE_OPS(HSMB_WORKER_CASE)
#undef HSMB_WORKER_CASE
  }
  return std::unexpected(hsm_error{ckr_bad_request, "unexpected op"});
}

}  // namespace hsmb
