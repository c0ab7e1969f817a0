// The worker protocol as one table, in the spirit of p11-kit's RPC call table: for each wire::op,
// the type of its request and of its reply. The worker's dispatch (hsm_backends/worker/dispatch.cpp)
// and the broker's typed_call (broker/typed_call.h) both go through it, so a request or a reply of
// the wrong type for its op does not compile. The bytes are those of the codecs in messages.h.
//
// A broker call site, before:
//     bytes request;
//     wire::encode_sign(request, canary_label, sign_mechanism::ecdsa, hash_alg::sha256, digest);
//     auto reply = co_await worker.call(wire::op::sign, request, timeout);
//     if (!reply) co_return std::unexpected(reply.error());
//     auto signature = wire::decode_blob(*reply);
//     if (!signature) co_return fail(500, "malformed reply from worker");
// and after:
//     wire::sign_request request{canary_label, sign_mechanism::ecdsa, hash_alg::sha256, digest};
//     auto reply = co_await typed_call<wire::op::sign>(worker, request, timeout);
//     if (!reply && reply.error().where == fault::malformed_reply) co_return internal(reply.error().message);
//     if (!reply) co_return std::unexpected(reply.error());
//     bytes& signature = reply->value;
// The request is a named variable: GCC 12 mishandles non-trivial temporaries in co_await
// expressions. Where a channel is not a `call` (member_pool::execute), the same table is used by
// hand: `auto payload = wire::encode_request<wire::op::sign>(request);` before, and
// `wire::take_reply<wire::op::sign>(*raw)` after (it wipes *raw when the reply is a secret).
#pragma once

#include <concepts>
#include <optional>
#include <type_traits>

#include "hsm_backends/hsm_error.h"
#include "hsm_backends/wire/frame.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb::wire {

// ---- payload types: how each is encoded and decoded, and whether it holds a secret -------------

// `secret`: encoded into wiping memory (secure_bytes), and a raw reply of this type is wiped
// once decoded.
template <class T>
struct codec;  // no specialisation: the type cannot be a request or reply

template <>
struct codec<empty_payload> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B&, const empty_payload&) {}
  static std::optional<empty_payload> decode(byte_view in) {
    if (!in.empty()) return std::nullopt;
    return empty_payload{};
  }
};

template <>
struct codec<member_settings> {
  static constexpr bool secret = true;  // the PIN and SO PIN
  template <class B>
  static void encode(B& out, const member_settings& v) { encode_hello(out, v); }
  static std::optional<member_settings> decode(byte_view in) { return decode_hello(in); }
};

template <>
struct codec<token_description> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const token_description& v) { encode_token(out, v); }
  static std::optional<token_description> decode(byte_view in) { return decode_token(in); }
};

template <>
struct codec<random_request> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const random_request& v) { encode_random(out, v.size); }
  static std::optional<random_request> decode(byte_view in) {
    auto n = decode_random(in);
    if (!n) return std::nullopt;
    return random_request{*n};
  }
};

template <>
struct codec<generate_key_request> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const generate_key_request& v) { encode_generate_key(out, v.label, v.type); }
  static std::optional<generate_key_request> decode(byte_view in) { return decode_generate_key(in); }
};

template <>
struct codec<label_request> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const label_request& v) { encode_label(out, v.label); }
  static std::optional<label_request> decode(byte_view in) { return decode_label(in); }
};

template <>
struct codec<put_metadata_request> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const put_metadata_request& v) { encode_put_metadata(out, v.name, v.value); }
  static std::optional<put_metadata_request> decode(byte_view in) { return decode_put_metadata(in); }
};

template <>
struct codec<cipher_request> {
  static constexpr bool secret = true;  // encrypt's plaintext
  template <class B>
  static void encode(B& out, const cipher_request& v) { encode_cipher(out, v.label, v.data, v.aad); }
  static std::optional<cipher_request> decode(byte_view in) { return decode_cipher(in); }
};

template <>
struct codec<sign_request> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const sign_request& v) { encode_sign(out, v.label, v.mechanism, v.hash, v.data, v.salt); }
  static std::optional<sign_request> decode(byte_view in) { return decode_sign(in); }
};

template <>
struct codec<hmac_request> {
  static constexpr bool secret = true;  // the message may be one
  template <class B>
  static void encode(B& out, const hmac_request& v) { encode_hmac(out, v.label, v.hash, v.data); }
  static std::optional<hmac_request> decode(byte_view in) { return decode_hmac(in); }
};

template <>
struct codec<import_key_request> {
  static constexpr bool secret = false;  // the key travels wrapped
  template <class B>
  static void encode(B& out, const import_key_request& v) { encode_import_key(out, v.label, v.key); }
  static std::optional<import_key_request> decode(byte_view in) { return decode_import_key(in); }
};

template <>
struct codec<public_key_blob> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const public_key_blob& v) { encode_public_key(out, v); }
  static std::optional<public_key_blob> decode(byte_view in) { return decode_public_key(in); }
};

template <>
struct codec<wrapped_key> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const wrapped_key& v) { encode_wrapped_key(out, v); }
  static std::optional<wrapped_key> decode(byte_view in) { return decode_wrapped_key(in); }
};

template <>
struct codec<blob_payload> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const blob_payload& v) { encode_blob(out, v.value); }
  static std::optional<blob_payload> decode(byte_view in) {
    auto b = decode_blob(in);
    if (!b) return std::nullopt;
    return blob_payload{std::move(*b)};
  }
};

template <>
struct codec<secret_payload> {
  static constexpr bool secret = true;
  template <class B>
  static void encode(B& out, const secret_payload& v) { encode_blob(out, v.value); }
  static std::optional<secret_payload> decode(byte_view in) {
    auto b = decode_blob<secure_bytes>(in);
    if (!b) return std::nullopt;
    return secret_payload{std::move(*b)};
  }
};

template <>
struct codec<count_payload> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const count_payload& v) { encode_count(out, v.count); }
  static std::optional<count_payload> decode(byte_view in) {
    auto n = decode_count(in);
    if (!n) return std::nullopt;
    return count_payload{*n};
  }
};

template <>
struct codec<metadata_list_payload> {
  static constexpr bool secret = false;
  template <class B>
  static void encode(B& out, const metadata_list_payload& v) { encode_metadata_list(out, v.records); }
  static std::optional<metadata_list_payload> decode(byte_view in) {
    auto list = decode_metadata_list(in);
    if (!list) return std::nullopt;
    return metadata_list_payload{std::move(*list)};
  }
};

// ---- the table -------------------------------------------------------------------------------

template <op O>
struct op_traits;  // no entry: a compile error wherever the op is used (and the check below)

#define HSMB_WIRE_ENTRY(name, request_type, reply_type) \
  template <>                                           \
  struct op_traits<op::name> {                          \
    using request = request_type;                       \
    using reply = reply_type;                           \
  }

HSMB_WIRE_ENTRY(hello, member_settings, token_description);  // opens the backend
HSMB_WIRE_ENTRY(probe, empty_payload, empty_payload);
HSMB_WIRE_ENTRY(random, random_request, secret_payload);
HSMB_WIRE_ENTRY(generate_key, generate_key_request, public_key_blob);  // kind none for secret keys
HSMB_WIRE_ENTRY(public_key, label_request, public_key_blob);
HSMB_WIRE_ENTRY(destroy_objects, label_request, count_payload);  // a label prefix; how many went
HSMB_WIRE_ENTRY(list_metadata, empty_payload, metadata_list_payload);
HSMB_WIRE_ENTRY(put_metadata, put_metadata_request, empty_payload);
HSMB_WIRE_ENTRY(delete_metadata, label_request, empty_payload);  // the record's name
HSMB_WIRE_ENTRY(encrypt, cipher_request, blob_payload);          // nonce || ciphertext || tag
HSMB_WIRE_ENTRY(decrypt, cipher_request, secret_payload);        // the plaintext
HSMB_WIRE_ENTRY(sign, sign_request, blob_payload);
HSMB_WIRE_ENTRY(hmac, hmac_request, blob_payload);
HSMB_WIRE_ENTRY(key_check, generate_key_request, blob_payload);  // label and type; a key check value
HSMB_WIRE_ENTRY(export_key, generate_key_request, wrapped_key);  // label and type
HSMB_WIRE_ENTRY(import_key, import_key_request, empty_payload);
HSMB_WIRE_ENTRY(cluster_key_check, empty_payload, blob_payload);
HSMB_WIRE_ENTRY(create_cluster_key, empty_payload, empty_payload);
HSMB_WIRE_ENTRY(create_transport_key, empty_payload, public_key_blob);
HSMB_WIRE_ENTRY(export_cluster_key, public_key_blob, blob_payload);  // the receiver's transport key
HSMB_WIRE_ENTRY(import_cluster_key, blob_payload, empty_payload);    // what export_cluster_key gave

#undef HSMB_WIRE_ENTRY

template <op O>
using request_of = typename op_traits<O>::request;
template <op O>
using reply_of = typename op_traits<O>::reply;

// An op with an entry whose request and reply types both have a codec.
template <op O>
concept in_table = requires(byte_view in, bytes& out, const request_of<O>& q, const reply_of<O>& r) {
  { codec<request_of<O>>::decode(in) } -> std::same_as<std::optional<request_of<O>>>;
  { codec<reply_of<O>>::decode(in) } -> std::same_as<std::optional<reply_of<O>>>;
  codec<request_of<O>>::encode(out, q);
  codec<reply_of<O>>::encode(out, r);
};

#define HSMB_WIRE_CHECK_ENTRY(name, code) \
  static_assert(in_table<op::name>, "wire::op::" #name " needs an entry in the table of wire/protocol.h");
HSMB_WIRE_OPS(HSMB_WIRE_CHECK_ENTRY)
#undef HSMB_WIRE_CHECK_ENTRY

// ---- encoding and decoding through the table -------------------------------------------------

// Where an encoded payload of type T is kept: wiping memory when it holds a secret.
template <class T>
using buffer_for = std::conditional_t<codec<T>::secret, secure_bytes, bytes>;

// True when the op's reply holds a secret: the raw reply is wiped once decoded.
template <op O>
inline constexpr bool secret_reply = codec<reply_of<O>>::secret;

template <op O>
buffer_for<request_of<O>> encode_request(const request_of<O>& request) {
  buffer_for<request_of<O>> out;
  codec<request_of<O>>::encode(out, request);
  return out;
}
template <op O>
std::optional<request_of<O>> decode_request(byte_view in) {
  return codec<request_of<O>>::decode(in);
}
template <op O, class B>
void encode_reply(B& out, const reply_of<O>& reply) {
  codec<reply_of<O>>::encode(out, reply);
}
template <op O>
std::optional<reply_of<O>> decode_reply(byte_view in) {
  return codec<reply_of<O>>::decode(in);
}

// decode_reply, then, when the reply holds a secret, wipes the raw bytes it came in (which the
// caller got as plain `bytes`).
template <op O, class B>
std::optional<reply_of<O>> take_reply(B& raw) {
  auto reply = decode_reply<O>(raw);
  if constexpr (secret_reply<O>) secure_wipe(raw.data(), raw.size());
  return reply;
}

// What a caller gets for a reply that does not decode.
inline hsm_error malformed_reply() { return broker_fault(fault::malformed_reply, "malformed reply from worker"); }

}  // namespace hsmb::wire
