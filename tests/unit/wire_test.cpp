// The worker frame protocol: headers, payload codecs, and refusal of malformed input.
#include <doctest/doctest.h>

#include "hsm_backends/hsm_error.h"
#include "hsm_backends/wire/frame.h"
#include "hsm_backends/wire/messages.h"

using namespace hsmb;
using namespace hsmb::wire;

TEST_CASE("frame headers round trip") {
  frame_header h{1234, op::sign, status::error, 0x0102030405060708ull};
  std::uint8_t buf[header_size];
  encode_header(h, buf);
  auto d = decode_header(buf);
  REQUIRE(d);
  CHECK(d->payload_size == 1234u);
  CHECK(d->operation == op::sign);
  CHECK(d->result == status::error);
  CHECK(d->id == 0x0102030405060708ull);
}

TEST_CASE("bad headers are refused") {
  std::uint8_t buf[header_size];
  encode_header({10, op::probe, status::ok, 1}, buf);
  buf[4] = 99;  // unknown op
  CHECK_FALSE(decode_header(buf));
  encode_header({10, op::probe, status::ok, 1}, buf);
  buf[6] = 7;  // unknown status
  CHECK_FALSE(decode_header(buf));
  encode_header({max_payload + 1, op::probe, status::ok, 1}, buf);
  CHECK_FALSE(decode_header(buf));
}

TEST_CASE("peek_frame finds whole frames at the front of a byte stream") {
  bytes stream(header_size + 3);
  encode_header({3, op::sign, status::ok, 9}, stream.data());
  stream.insert(stream.end(), {0xAA, 0xBB});  // the start of a next frame
  auto f = peek_frame(stream);
  CHECK(f.is == frame_at_front::state::whole);
  CHECK(f.size == header_size + 3);
  CHECK(f.header.id == 9);
  CHECK(peek_frame(byte_view(stream).first(header_size + 2)).is == frame_at_front::state::partial);
  auto header_only = peek_frame(byte_view(stream).first(header_size));
  CHECK(header_only.size == header_size + 3);  // how much to wait for
  CHECK(peek_frame(byte_view(stream).first(5)).is == frame_at_front::state::partial);
  bytes garbage(header_size, 0xFF);
  CHECK(peek_frame(garbage).is == frame_at_front::state::broken);
}

TEST_CASE("request payloads round trip") {
  member_settings s;
  s.module = "/m.so";
  s.token_label = "t";
  s.slot = 5;
  s.pin = "1234";
  s.sessions = 3;
  bytes b;
  encode_hello(b, s);
  auto h = decode_hello(b);
  REQUIRE(h);
  CHECK(h->module == "/m.so");
  CHECK(h->slot == 5u);
  CHECK(std::string(h->pin.c_str()) == "1234");
  CHECK(h->sessions == 3u);

  bytes c;
  encode_cipher(c, "hsmb/k/v1", as_bytes("plain"), as_bytes("aad"));
  auto cr = decode_cipher(c);
  REQUIRE(cr);
  CHECK(cr->label == "hsmb/k/v1");
  CHECK(std::string(cr->data.begin(), cr->data.end()) == "plain");
  CHECK(std::string(cr->aad.begin(), cr->aad.end()) == "aad");

  bytes sg;
  encode_sign(sg, "l", sign_mechanism::rsa_pss, hash_alg::sha384, as_bytes("digest"));
  auto sr = decode_sign(sg);
  REQUIRE(sr);
  CHECK(sr->mechanism == sign_mechanism::rsa_pss);
  CHECK(sr->hash == hash_alg::sha384);
  CHECK(sr->salt == pss_salt_hash_length);  // the default: the digest's length
  bytes salted;
  encode_sign(salted, "l", sign_mechanism::rsa_pss, hash_alg::sha3_256, as_bytes("digest"), 222);
  auto ss = decode_sign(salted);
  REQUIRE(ss);
  CHECK(ss->salt == 222u);
  CHECK(ss->hash == hash_alg::sha3_256);
}

TEST_CASE("truncated, padded or out-of-range payloads are refused") {
  bytes c;
  encode_cipher(c, "label", as_bytes("data"), {});
  for (std::size_t cut = 0; cut < c.size(); ++cut) CHECK_FALSE(decode_cipher(byte_view(c.data(), cut)));
  c.push_back(0);
  CHECK_FALSE(decode_cipher(c));  // trailing garbage

  bytes sg;
  encode_sign(sg, "l", sign_mechanism::ecdsa, hash_alg::sha256, {});
  sg[4 + 1] = 42;  // mechanism out of range
  CHECK_FALSE(decode_sign(sg));

  bytes huge;
  writer(huge).u32(0xffffffffu);  // blob length beyond the buffer
  CHECK_FALSE(decode_blob(huge));
}

TEST_CASE("response payloads round trip") {
  bytes e;
  encode_error(e, hsm_error{0x30, "device gone"});
  auto err = decode_error(e);
  REQUIRE(err);
  CHECK(err->ckr == 0x30u);
  CHECK(err->message == "device gone");

  bytes l;
  encode_metadata_list(l, {{"a", {1, 2}}, {"b", {}}});
  auto list = decode_metadata_list(l);
  REQUIRE(list);
  REQUIRE(list->size() == 2);
  CHECK((*list)[0].name == "a");
  CHECK((*list)[0].value == bytes{1, 2});

  bytes p;
  encode_public_key(p, public_key_blob{public_key_blob::kind::rsa, {1}, {1, 0, 1}});
  auto pk = decode_public_key(p);
  REQUIRE(pk);
  CHECK(pk->k == public_key_blob::kind::rsa);
  CHECK(pk->b == bytes{1, 0, 1});
}

TEST_CASE("CKR classification") {
  CHECK(is_device_error(0x30));  // CKR_DEVICE_ERROR
  CHECK(is_device_error(0xE0));  // CKR_TOKEN_NOT_PRESENT
  CHECK(is_device_error(broker_fault(fault::call_timeout, "")));
  CHECK_FALSE(is_device_error(0x40));  // CKR_ENCRYPTED_DATA_INVALID: the caller's data
  CHECK_FALSE(is_device_error(0x21));  // CKR_DATA_LEN_RANGE
  CHECK_FALSE(is_device_error(ckr_object_not_found));
  CHECK(ckr_name(0x30) == "CKR_DEVICE_ERROR");
  CHECK(ckr_name(0x8000ABCD) == "CKR_0x8000ABCD");
}
