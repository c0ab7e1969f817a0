// Payloads of each worker operation. Encoders append to any byte buffer; decoders return
// nullopt on a malformed payload (which the receiver treats as a broken peer).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "hsm_backends/backend.h"
#include "hsm_backends/wire/codec.h"

namespace hsmb::wire {

// ---- requests --------------------------------------------------------------------------

struct generate_key_request {
  std::string label;
  key_type type;
};
// public_key, destroy_objects (label prefix), delete_metadata (name) carry one string.
struct label_request {
  std::string label;
};
struct put_metadata_request {
  std::string name;
  bytes value;
};
// encrypt (data = plaintext) and decrypt (data = nonce||ciphertext||tag).
struct cipher_request {
  std::string label;
  secure_bytes data;
  bytes aad;
};
struct sign_request {
  std::string label;
  sign_mechanism mechanism;
  hash_alg hash;
  bytes data;
  std::uint32_t salt = pss_salt_hash_length;  // RSA-PSS only: the salt's length in bytes
};
struct import_key_request {
  std::string label;
  wrapped_key key;
};
struct hmac_request {
  std::string label;
  hash_alg hash;
  secure_bytes data;
};
struct random_request {
  std::uint32_t size = 0;  // bytes wanted
};

// Payloads that are a bare value, as types of their own for the table in wire/protocol.h.
struct empty_payload {};
struct blob_payload {
  bytes value;
};
// A blob that is a secret (random bytes, a plaintext): it lives in wiping memory.
struct secret_payload {
  secure_bytes value;
};
struct count_payload {
  std::uint32_t count = 0;
};
struct metadata_list_payload {
  std::vector<metadata_record> records;
};

template <class B>
void encode_hello(B& out, const member_settings& s) {
  writer w(out);
  w.str(s.module);
  w.str(s.token_label);
  w.u8(s.slot ? 1 : 0);
  w.u64(s.slot.value_or(0));
  w.str(s.pin);
  w.u32(s.sessions);
  w.str(s.so_pin);
}
template <class B>
void encode_random(B& out, std::uint32_t n) { writer(out).u32(n); }
template <class B>
void encode_generate_key(B& out, std::string_view label, key_type t) {
  writer w(out);
  w.str(label);
  w.u8(static_cast<std::uint8_t>(t));
}
template <class B>
void encode_label(B& out, std::string_view label) { writer(out).str(label); }
template <class B>
void encode_put_metadata(B& out, std::string_view name, byte_view value) {
  writer w(out);
  w.str(name);
  w.blob(value);
}
template <class B>
void encode_cipher(B& out, std::string_view label, byte_view data, byte_view aad) {
  writer w(out);
  w.str(label);
  w.blob(data);
  w.blob(aad);
}
template <class B>
void encode_sign(B& out, std::string_view label, sign_mechanism m, hash_alg h, byte_view data,
                 std::uint32_t salt = pss_salt_hash_length) {
  writer w(out);
  w.str(label);
  w.u8(static_cast<std::uint8_t>(m));
  w.u8(static_cast<std::uint8_t>(h));
  w.blob(data);
  w.u32(salt);
}
template <class B>
void encode_hmac(B& out, std::string_view label, hash_alg h, byte_view data) {
  writer w(out);
  w.str(label);
  w.u8(static_cast<std::uint8_t>(h));
  w.blob(data);
}

template <class B>
void encode_public_key(B& out, const public_key_blob& k);
template <class B>
void encode_wrapped_key(B& out, const wrapped_key& k) {
  writer w(out);
  w.u8(static_cast<std::uint8_t>(k.type));
  w.blob(k.wrapped);
  encode_public_key(out, k.pub);
}
template <class B>
void encode_import_key(B& out, std::string_view label, const wrapped_key& k) {
  writer(out).str(label);
  encode_wrapped_key(out, k);
}

std::optional<member_settings> decode_hello(byte_view in);
std::optional<import_key_request> decode_import_key(byte_view in);
std::optional<std::uint32_t> decode_random(byte_view in);
std::optional<generate_key_request> decode_generate_key(byte_view in);
std::optional<label_request> decode_label(byte_view in);
std::optional<put_metadata_request> decode_put_metadata(byte_view in);
std::optional<cipher_request> decode_cipher(byte_view in);
std::optional<sign_request> decode_sign(byte_view in);
std::optional<hmac_request> decode_hmac(byte_view in);

// ---- responses -------------------------------------------------------------------------

template <class B>
void encode_error(B& out, const hsm_error& e) {
  writer w(out);
  w.u64(e.ckr);
  w.str(e.message);
}
template <class B>
void encode_token(B& out, const token_description& t) {
  writer w(out);
  w.str(t.label);
  w.str(t.manufacturer);
  w.str(t.model);
  w.str(t.serial);
  w.u32(static_cast<std::uint32_t>(t.mechanisms.size()));
  for (auto m : t.mechanisms) w.u64(m);
}
template <class B>
void encode_public_key(B& out, const public_key_blob& k) {
  writer w(out);
  w.u8(static_cast<std::uint8_t>(k.k));
  w.blob(k.a);
  w.blob(k.b);
}
// random, encrypt, decrypt, sign, hmac answer one blob.
template <class B>
void encode_blob(B& out, byte_view v) { writer(out).blob(v); }
template <class B>
void encode_count(B& out, std::uint32_t n) { writer(out).u32(n); }
template <class B>
void encode_metadata_list(B& out, const std::vector<metadata_record>& records) {
  writer w(out);
  w.u32(static_cast<std::uint32_t>(records.size()));
  for (auto& r : records) {
    w.str(r.name);
    w.blob(r.value);
  }
}

std::optional<hsm_error> decode_error(byte_view in);
std::optional<token_description> decode_token(byte_view in);
std::optional<public_key_blob> decode_public_key(byte_view in);
std::optional<wrapped_key> decode_wrapped_key(byte_view in);
template <class B = bytes>
std::optional<B> decode_blob(byte_view in) {
  reader r(in);
  auto v = r.blob();
  if (!r.ok_and_done()) return std::nullopt;
  return B(v.begin(), v.end());
}
std::optional<std::uint32_t> decode_count(byte_view in);
std::optional<std::vector<metadata_record>> decode_metadata_list(byte_view in);

}  // namespace hsmb::wire
