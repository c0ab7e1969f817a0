// The worker protocol's table (wire/protocol.h): every op's request and reply round trip through
// it, every op reaches its own backend call through the worker's dispatch, and a malformed request
// is refused with ckr_bad_request before the backend sees it.
#include <doctest/doctest.h>

#include <string>
#include <type_traits>

#include "hsm_backends/wire/protocol.h"
#include "hsm_backends/worker/dispatch.h"

using namespace hsmb;
using namespace hsmb::wire;

namespace {

// One value of each payload type with every field set, so that a field a codec drops shows.
template <class T>
struct tag {};
empty_payload sample(tag<empty_payload>) { return {}; }
member_settings sample(tag<member_settings>) { return {"/m.so", "token", 5, "1234", 3, "so-pin"}; }
token_description sample(tag<token_description>) { return {"t", "maker", "model", "serial", {0x1087, 0x1041}}; }
random_request sample(tag<random_request>) { return {33}; }
generate_key_request sample(tag<generate_key_request>) { return {"hsmb/k/v1", key_type::ecdsa_p384}; }
label_request sample(tag<label_request>) { return {"hsmb/k/"}; }
put_metadata_request sample(tag<put_metadata_request>) { return {"hsmb-meta/k", {1, 2, 3}}; }
cipher_request sample(tag<cipher_request>) { return {"hsmb/k/v2", secure_bytes{'p', 'l'}, {'a'}}; }
sign_request sample(tag<sign_request>) { return {"hsmb/k/v3", sign_mechanism::rsa_pss, hash_alg::sha384, {9, 8}}; }
hmac_request sample(tag<hmac_request>) { return {"hsmb/k/v1/hmac", hash_alg::sha512, secure_bytes{'m'}}; }
public_key_blob sample(tag<public_key_blob>) { return {public_key_blob::kind::ec, {6, 8}, {4, 1, 2}}; }
wrapped_key sample(tag<wrapped_key>) { return {key_type::rsa_2048, {7, 7, 7}, sample(tag<public_key_blob>{})}; }
import_key_request sample(tag<import_key_request>) { return {"hsmb/k/v4", sample(tag<wrapped_key>{})}; }
blob_payload sample(tag<blob_payload>) { return {{1, 2, 3, 4}}; }
secret_payload sample(tag<secret_payload>) { return {secure_bytes{5, 6}}; }
count_payload sample(tag<count_payload>) { return {7}; }
metadata_list_payload sample(tag<metadata_list_payload>) { return {{{"a", {1}}, {"b", {}}}}; }

template <class T>
T sample() {
  return sample(tag<T>{});
}

template <class T>
bytes encoded(const T& v) {
  bytes out;
  codec<T>::encode(out, v);
  return out;
}

// Answers each call with the sample reply and records which op it served and its label.
class recording_backend : public hsm_backend {
 public:
  std::string served, label;

  hsm_result<token_description> open(const member_settings&) override { return note("hello", "", sample<token_description>()); }
  hsm_result<void> probe() override { return note("probe", ""); }
  hsm_result<secure_bytes> random(std::size_t) override { return note("random", "", sample<secret_payload>().value); }
  hsm_result<public_key_blob> generate_key(const std::string& l, key_type) override {
    return note("generate_key", l, sample<public_key_blob>());
  }
  hsm_result<public_key_blob> public_key(const std::string& l) override { return note("public_key", l, sample<public_key_blob>()); }
  hsm_result<std::uint32_t> destroy_objects(const std::string& l) override {
    return note("destroy_objects", l, sample<count_payload>().count);
  }
  hsm_result<std::vector<metadata_record>> list_metadata() override {
    return note("list_metadata", "", sample<metadata_list_payload>().records);
  }
  hsm_result<void> put_metadata(const std::string& name, byte_view) override { return note("put_metadata", name); }
  hsm_result<void> delete_metadata(const std::string& name) override { return note("delete_metadata", name); }
  hsm_result<bytes> encrypt(const std::string& l, byte_view, byte_view) override { return note("encrypt", l, blob()); }
  hsm_result<secure_bytes> decrypt(const std::string& l, byte_view, byte_view) override {
    return note("decrypt", l, sample<secret_payload>().value);
  }
  hsm_result<bytes> sign(const std::string& l, sign_mechanism, hash_alg, byte_view, std::uint32_t) override { return note("sign", l, blob()); }
  hsm_result<bytes> hmac(const std::string& l, hash_alg, byte_view) override { return note("hmac", l, blob()); }
  hsm_result<bytes> key_check_value(const std::string& l, key_type) override { return note("key_check", l, blob()); }
  hsm_result<wrapped_key> export_key(const std::string& l, key_type) override { return note("export_key", l, sample<wrapped_key>()); }
  hsm_result<void> import_key(const std::string& l, const wrapped_key&) override { return note("import_key", l); }
  hsm_result<bytes> cluster_key_check() override { return note("cluster_key_check", "", blob()); }
  hsm_result<void> create_cluster_key() override { return note("create_cluster_key", ""); }
  hsm_result<public_key_blob> create_transport_key() override {
    return note("create_transport_key", "", sample<public_key_blob>());
  }
  hsm_result<bytes> export_cluster_key(const public_key_blob&) override { return note("export_cluster_key", "", blob()); }
  hsm_result<void> import_cluster_key(byte_view) override { return note("import_cluster_key", ""); }

 private:
  static bytes blob() { return sample<blob_payload>().value; }
  hsm_result<void> note(const char* op_name, const std::string& l) {
    served = op_name;
    label = l;
    return {};
  }
  template <class T>
  hsm_result<T> note(const char* op_name, const std::string& l, T value) {
    note(op_name, l);
    return value;
  }
};

template <op O>
void round_trips() {
  INFO("op ", static_cast<int>(O));
  auto request = sample<request_of<O>>();
  auto payload = encode_request<O>(request);
  static_assert(std::is_same_v<decltype(payload), secure_bytes> == codec<request_of<O>>::secret);
  auto request_back = decode_request<O>(payload);
  REQUIRE(request_back);
  CHECK(encoded(*request_back) == encoded(request));
  auto reply = sample<reply_of<O>>();
  bytes answer;
  encode_reply<O>(answer, reply);
  auto reply_back = decode_reply<O>(answer);
  REQUIRE(reply_back);
  CHECK(encoded(*reply_back) == answer);
}

template <op O>
void dispatches(const char* name) {
  INFO("op ", name);
  recording_backend be;
  auto request = sample<request_of<O>>();
  auto payload = encode_request<O>(request);
  auto answer = dispatch(be, O, payload);
  if constexpr (O == op::hello) {  // the backend is opened once, by worker_server, never here
    REQUIRE_FALSE(answer);
    CHECK(answer.error().ckr == ckr_bad_request);
    CHECK(answer.error().message == "already open");
    CHECK(be.served.empty());
  } else {
    REQUIRE_MESSAGE(answer, (answer ? "" : answer.error().message));
    CHECK(be.served == name);
    if constexpr (requires { request.label; }) CHECK(be.label == request.label);
    auto reply = decode_reply<O>(*answer);
    REQUIRE(reply);
    CHECK(encoded(*reply) == encoded(sample<reply_of<O>>()));
  }
}

// Trailing bytes, and one byte short: the backend is not called.
template <op O>
void refuses_malformed() {
  if constexpr (O != op::hello) {
    INFO("op ", static_cast<int>(O));
    auto payload = encode_request<O>(sample<request_of<O>>());
    bytes padded(payload.begin(), payload.end());
    padded.push_back(0);
    std::vector<bytes> malformed{padded};
    if (!payload.empty()) malformed.emplace_back(payload.begin(), payload.end() - 1);
    for (auto& p : malformed) {
      recording_backend be;
      auto answer = dispatch(be, O, p);
      REQUIRE_FALSE(answer);
      CHECK(answer.error().ckr == ckr_bad_request);
      CHECK(answer.error().message == "malformed request payload for op " + std::to_string(static_cast<int>(O)));
      CHECK(be.served.empty());
    }
  }
}

}  // namespace

TEST_CASE("the op list is the protocol's: codes 1 to 21, each in the table") {
  int listed = 0;
#define HSMB_TEST_COUNT(name, code) \
  ++listed;                         \
  CHECK(static_cast<int>(op::name) == (code));
  HSMB_WIRE_OPS(HSMB_TEST_COUNT)
#undef HSMB_TEST_COUNT
  CHECK(listed == 21);
  for (int code = 0; code < 300; ++code) CHECK(is_known_op(static_cast<std::uint16_t>(code)) == (code >= 1 && code <= 21));
}

TEST_CASE("every op's request and reply round trip through the table") {
#define HSMB_TEST_ROUND_TRIP(name, code) round_trips<op::name>();
  HSMB_WIRE_OPS(HSMB_TEST_ROUND_TRIP)
#undef HSMB_TEST_ROUND_TRIP
}

TEST_CASE("secrets are kept in wiping memory: PINs, plaintexts, HMAC input, random bytes") {
  CHECK(std::is_same_v<decltype(encode_request<op::hello>({})), secure_bytes>);
  CHECK(std::is_same_v<decltype(encode_request<op::encrypt>({})), secure_bytes>);
  CHECK(std::is_same_v<decltype(encode_request<op::hmac>({})), secure_bytes>);
  CHECK(std::is_same_v<request_of<op::encrypt>, cipher_request>);
  CHECK(std::is_same_v<decltype(cipher_request::data), secure_bytes>);
  CHECK(secret_reply<op::random>);
  CHECK(secret_reply<op::decrypt>);
  CHECK(std::is_same_v<decltype(reply_of<op::decrypt>::value), secure_bytes>);
  CHECK_FALSE(secret_reply<op::encrypt>);
  CHECK_FALSE(secret_reply<op::sign>);
}

TEST_CASE("the worker's dispatch runs each op's own backend call and answers with its reply") {
#define HSMB_TEST_DISPATCH(name, code) dispatches<op::name>(#name);
  HSMB_WIRE_OPS(HSMB_TEST_DISPATCH)
#undef HSMB_TEST_DISPATCH
}

TEST_CASE("the worker's dispatch refuses a malformed request with ckr_bad_request") {
#define HSMB_TEST_MALFORMED(name, code) refuses_malformed<op::name>();
  HSMB_WIRE_OPS(HSMB_TEST_MALFORMED)
#undef HSMB_TEST_MALFORMED
  recording_backend be;
  bytes junk{1, 2, 3};
  auto r = dispatch(be, op::sign, junk);
  REQUIRE_FALSE(r);
  CHECK(r.error().ckr == ckr_bad_request);
}

TEST_CASE("a reply that does not decode as the op's reply is refused") {
  bytes answer;
  encode_reply<op::sign>(answer, blob_payload{{1, 2}});
  answer.push_back(0);
  CHECK_FALSE(decode_reply<op::sign>(answer));
  CHECK_FALSE(decode_reply<op::probe>(answer));  // probe answers nothing
  CHECK(decode_reply<op::probe>(bytes{}));
  CHECK(malformed_reply().where == fault::malformed_reply);
  CHECK(malformed_reply().message == "malformed reply from worker");
}
