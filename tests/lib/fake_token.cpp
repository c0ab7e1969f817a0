// The fake token's answers and scripting (tests/lib/fake_worker.h).
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <algorithm>

#include "hsm_backends/pkcs11/p11.h"
#include "hsm_backends/wire/messages.h"
#include "tests/lib/fake_token_state.h"

namespace hsmb::test {
namespace {

// Every mechanism the broker looks for (hsm_backends/capabilities.cpp): a token that offers it all.
std::vector<std::uint64_t> every_mechanism() {
  return {CKM_AES_KEY_GEN,  CKM_AES_GCM,         CKM_EC_KEY_PAIR_GEN, CKM_ECDSA,
          CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA, CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_RSA_PKCS,
          CKM_RSA_PKCS_PSS, CKM_GENERIC_SECRET_KEY_GEN, CKM_SHA_1_HMAC, CKM_SHA224_HMAC,
          CKM_SHA256_HMAC,  CKM_SHA384_HMAC,     CKM_SHA512_HMAC,     CKM_AES_KEY_WRAP,
          CKM_AES_KEY_WRAP_PAD};
}

hsm_error bad_request(wire::op o) {
  return {ckr_bad_request, "fake token: malformed payload for op " + std::to_string(static_cast<int>(o))};
}

hsm_error not_found(const std::string& label) { return {ckr_object_not_found, "no object labelled " + label}; }

std::shared_ptr<EVP_PKEY> new_p256() { return {EVP_EC_gen("P-256"), EVP_PKEY_free}; }

public_key_blob blob_of(EVP_PKEY* key) {
  public_key_blob b;
  b.k = public_key_blob::kind::ec;
  b.a = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};  // CKA_EC_PARAMS: prime256v1
  std::uint8_t point[133];
  std::size_t n = 0;
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point, &n);
  b.b.assign(point, point + n);
  return b;
}

// ECDSA over `digest` as PKCS#11 returns it: r || s, 32 bytes each.
bytes raw_signature(EVP_PKEY* key, byte_view digest) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key, nullptr), EVP_PKEY_CTX_free);
  std::size_t len = 0;
  EVP_PKEY_sign_init(ctx.get());
  EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size());
  bytes der(len);
  EVP_PKEY_sign(ctx.get(), der.data(), &len, digest.data(), digest.size());
  const std::uint8_t* p = der.data();
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)),
                                                            ECDSA_SIG_free);
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  bytes raw(64);
  BN_bn2binpad(r, raw.data(), 32);
  BN_bn2binpad(s, raw.data() + 32, 32);
  return raw;
}

template <class F>
bytes encoded(F encode) {
  bytes out;
  encode(out);
  return out;
}

}  // namespace

fake_step fake_step::fail(unsigned long ckr, std::string message) { return {kind::fail, {ckr, std::move(message)}}; }
fake_step fake_step::device_error() { return fail(CKR_DEVICE_ERROR, "scripted device error"); }

fake_token::fake_token(std::string label) : state_(std::make_shared<state>()) {
  state_->label = label;
  state_->description = {label, "hsmb", "fake token", label, every_mechanism()};
}
fake_token::~fake_token() = default;

const std::string& fake_token::label() const { return state_->label; }
token_description& fake_token::description() { return state_->description; }
void fake_token::script(wire::op op, fake_step s, int times) {
  auto& q = state_->rules[op];
  auto always = std::find_if(q.begin(), q.end(), [](auto& r) { return r.left < 0; });
  q.insert(always, {std::move(s), times});  // scripted calls come before an always() rule
}
void fake_token::always(wire::op op, fake_step s) { state_->rules[op].push_back({std::move(s), -1}); }
void fake_token::clear(wire::op op) { state_->rules.erase(op); }
void fake_token::answer_wrongly(bool wrong) { state_->wrong = wrong; }
void fake_token::resume() {
  auto hung = std::move(state_->hung);
  state_->hung.clear();
  for (auto& answer : hung) answer();
}
void fake_token::on(wire::op op, std::function<hsm_result<bytes>(byte_view)> handler) {
  state_->handlers[op] = std::move(handler);
}
std::size_t fake_token::calls(wire::op op) const {
  auto it = state_->calls.find(op);
  return it == state_->calls.end() ? 0 : it->second;
}
std::size_t fake_token::workers_started() const { return state_->started; }
std::size_t fake_token::workers_alive() const { return state_->alive; }
std::vector<metadata_record>& fake_token::records() { return state_->records; }

fake_step fake_token::state::next(wire::op op) {
  auto it = rules.find(op);
  if (it == rules.end() || it->second.empty()) return fake_step::answer();
  auto& r = it->second.front();
  auto s = r.step;
  if (r.left > 0 && --r.left == 0) it->second.pop_front();
  return s;
}

hsm_result<bytes> fake_token::state::answer(wire::op o, byte_view p) {
  if (auto h = handlers.find(o); h != handlers.end()) return h->second(p);
  switch (o) {
    case wire::op::hello: return encoded([&](bytes& b) { wire::encode_token(b, description); });
    case wire::op::probe: return bytes{};
    case wire::op::random: {
      auto n = wire::decode_random(p);
      if (!n) return std::unexpected(bad_request(o));
      return encoded([&](bytes& b) { wire::encode_blob(b, bytes(*n, 0x5a)); });
    }
    case wire::op::generate_key: return generate(p);
    case wire::op::public_key: return public_key(p);
    case wire::op::sign: return sign(p);
    case wire::op::destroy_objects: return destroy(p);
    case wire::op::list_metadata: return encoded([&](bytes& b) { wire::encode_metadata_list(b, records); });
    case wire::op::put_metadata: return put_record(p);
    case wire::op::delete_metadata: return delete_record(p);
    case wire::op::key_check: return check_value(p);
    default:  // who answered: enough for routing tests
      return encoded([&](bytes& b) { wire::encode_blob(b, as_bytes(label)); });
  }
}

hsm_result<bytes> fake_token::state::generate(byte_view p) {
  auto r = wire::decode_generate_key(p);
  if (!r) return std::unexpected(bad_request(wire::op::generate_key));
  auto key = r->type == key_type::ecdsa_p256 ? new_p256() : nullptr;
  keys[r->label] = key;
  auto blob = key ? blob_of(key.get()) : public_key_blob{};
  return encoded([&](bytes& b) { wire::encode_public_key(b, blob); });
}

hsm_result<bytes> fake_token::state::public_key(byte_view p) {
  auto r = wire::decode_label(p);
  if (!r) return std::unexpected(bad_request(wire::op::public_key));
  auto it = keys.find(r->label);
  if (it == keys.end() || !it->second) return std::unexpected(not_found(r->label));
  return encoded([&](bytes& b) { wire::encode_public_key(b, blob_of(it->second.get())); });
}

hsm_result<bytes> fake_token::state::sign(byte_view p) {
  auto r = wire::decode_sign(p);
  if (!r) return std::unexpected(bad_request(wire::op::sign));
  auto it = keys.find(r->label);
  if (it == keys.end() || !it->second) return std::unexpected(not_found(r->label));
  auto raw = raw_signature(it->second.get(), r->data);
  if (wrong) raw[10] ^= 0x01;
  return encoded([&](bytes& b) { wire::encode_blob(b, raw); });
}

// Named by the key's label, not the token's: copies of one key on two fake tokens match.
hsm_result<bytes> fake_token::state::check_value(byte_view p) {
  auto r = wire::decode_generate_key(p);
  if (!r) return std::unexpected(bad_request(wire::op::key_check));
  if (!keys.contains(r->label)) return std::unexpected(not_found(r->label));
  return encoded([&](bytes& b) { wire::encode_blob(b, as_bytes(r->label)); });
}

hsm_result<bytes> fake_token::state::destroy(byte_view p) {
  auto r = wire::decode_label(p);
  if (!r) return std::unexpected(bad_request(wire::op::destroy_objects));
  auto n = std::erase_if(keys, [&](auto& k) { return k.first.starts_with(r->label); });
  return encoded([&](bytes& b) { wire::encode_count(b, static_cast<std::uint32_t>(n)); });
}

hsm_result<bytes> fake_token::state::put_record(byte_view p) {
  auto r = wire::decode_put_metadata(p);
  if (!r) return std::unexpected(bad_request(wire::op::put_metadata));
  auto it = find_record(r->name);
  if (it != records.end()) it->value = std::move(r->value);
  else records.push_back({std::move(r->name), std::move(r->value)});
  return bytes{};
}

hsm_result<bytes> fake_token::state::delete_record(byte_view p) {
  auto r = wire::decode_label(p);
  if (!r) return std::unexpected(bad_request(wire::op::delete_metadata));
  auto it = find_record(r->label);
  if (it != records.end()) records.erase(it);  // one object, as the token deletes one
  return bytes{};
}

std::vector<metadata_record>::iterator fake_token::state::find_record(const std::string& name) {
  return std::find_if(records.begin(), records.end(), [&](auto& m) { return m.name == name; });
}

void fake_token::state::index(process_view& view) const {
  if (view.indexed_at == generation) return;
  view.known.clear();
  for (auto& r : records) view.known.insert(r.name);
  view.indexed_at = generation;
}

hsm_result<bytes> fake_token::state::answer(wire::op op, byte_view p, process_view& view) {
  if (!per_process) return answer(op, p);
  switch (op) {
    case wire::op::list_metadata: {
      index(view);
      std::vector<metadata_record> seen;
      for (auto& r : records)
        if (view.known.contains(r.name)) seen.push_back(r);
      return encoded([&](bytes& b) { wire::encode_metadata_list(b, seen); });
    }
    case wire::op::put_metadata:
    case wire::op::delete_metadata: {
      auto name = op == wire::op::put_metadata ? wire::decode_put_metadata(p).transform([](auto r) { return r.name; })
                                               : wire::decode_label(p).transform([](auto r) { return r.label; });
      if (!name) return std::unexpected(bad_request(op));
      bool existed = find_record(*name) != records.end();
      auto reply = answer(op, p);
      bool created = op == wire::op::put_metadata && !existed, deleted = op == wire::op::delete_metadata && existed;
      if (reply && (created || deleted)) {
        view.indexed_at = ++generation;  // the commit: what others did since the last find is missed
        created ? (void)view.known.insert(*name) : (void)view.known.erase(*name);
      }
      return reply;
    }
    default:
      return answer(op, p);
  }
}

void fake_token::per_process_views(bool on) { state_->per_process = on; }

}  // namespace hsmb::test
