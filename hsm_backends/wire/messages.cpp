#include "hsm_backends/wire/messages.h"

namespace hsmb::wire {
namespace {

template <class T>
std::optional<T> done(const reader& r, T&& value) {
  if (!r.ok_and_done()) return std::nullopt;
  return std::optional<T>(std::forward<T>(value));
}

bool valid_key_type(std::uint8_t v) { return v >= 1 && v <= static_cast<std::uint8_t>(key_type::hmac); }
bool valid_hash(std::uint8_t v) { return v <= static_cast<std::uint8_t>(last_hash_alg); }
bool valid_mechanism(std::uint8_t v) { return v >= 1 && v <= static_cast<std::uint8_t>(sign_mechanism::rsa_pss); }

}  // namespace

std::optional<member_settings> decode_hello(byte_view in) {
  reader r(in);
  member_settings s;
  s.module = r.str();
  s.token_label = r.str();
  bool has_slot = r.u8() != 0;
  std::uint64_t slot = r.u64();
  if (has_slot) s.slot = slot;
  auto pin = r.blob();
  s.pin.assign(pin.begin(), pin.end());
  s.sessions = r.u32();
  auto so_pin = r.blob();
  s.so_pin.assign(so_pin.begin(), so_pin.end());
  return done(r, std::move(s));
}

std::optional<std::uint32_t> decode_random(byte_view in) {
  reader r(in);
  std::uint32_t n = r.u32();
  return done(r, std::move(n));
}

std::optional<generate_key_request> decode_generate_key(byte_view in) {
  reader r(in);
  generate_key_request g;
  g.label = r.str();
  auto t = r.u8();
  if (!valid_key_type(t)) return std::nullopt;
  g.type = static_cast<key_type>(t);
  return done(r, std::move(g));
}

std::optional<label_request> decode_label(byte_view in) {
  reader r(in);
  label_request l{r.str()};
  return done(r, std::move(l));
}

std::optional<put_metadata_request> decode_put_metadata(byte_view in) {
  reader r(in);
  put_metadata_request p;
  p.name = r.str();
  auto v = r.blob();
  p.value.assign(v.begin(), v.end());
  return done(r, std::move(p));
}

std::optional<cipher_request> decode_cipher(byte_view in) {
  reader r(in);
  cipher_request c;
  c.label = r.str();
  auto d = r.blob();
  c.data.assign(d.begin(), d.end());
  auto a = r.blob();
  c.aad.assign(a.begin(), a.end());
  return done(r, std::move(c));
}

std::optional<sign_request> decode_sign(byte_view in) {
  reader r(in);
  sign_request s;
  s.label = r.str();
  auto m = r.u8();
  auto h = r.u8();
  if (!valid_mechanism(m) || !valid_hash(h)) return std::nullopt;
  s.mechanism = static_cast<sign_mechanism>(m);
  s.hash = static_cast<hash_alg>(h);
  auto d = r.blob();
  s.data.assign(d.begin(), d.end());
  s.salt = r.u32();
  return done(r, std::move(s));
}

std::optional<hmac_request> decode_hmac(byte_view in) {
  reader r(in);
  hmac_request m;
  m.label = r.str();
  auto h = r.u8();
  if (!valid_hash(h)) return std::nullopt;
  m.hash = static_cast<hash_alg>(h);
  auto d = r.blob();
  m.data.assign(d.begin(), d.end());
  return done(r, std::move(m));
}

std::optional<hsm_error> decode_error(byte_view in) {
  reader r(in);
  hsm_error e;
  e.ckr = static_cast<unsigned long>(r.u64());
  e.message = r.str();
  return done(r, std::move(e));
}

std::optional<token_description> decode_token(byte_view in) {
  reader r(in);
  token_description t;
  t.label = r.str();
  t.manufacturer = r.str();
  t.model = r.str();
  t.serial = r.str();
  std::uint32_t n = r.u32();
  for (std::uint32_t i = 0; i < n && !r.failed(); ++i) t.mechanisms.push_back(r.u64());
  return done(r, std::move(t));
}

namespace {

bool read_public_key(reader& r, public_key_blob& k) {
  auto kind = r.u8();
  if (kind > static_cast<std::uint8_t>(public_key_blob::kind::rsa)) return false;
  k.k = static_cast<public_key_blob::kind>(kind);
  auto a = r.blob();
  k.a.assign(a.begin(), a.end());
  auto b = r.blob();
  k.b.assign(b.begin(), b.end());
  return true;
}

bool read_wrapped_key(reader& r, wrapped_key& k) {
  auto t = r.u8();
  if (!valid_key_type(t)) return false;
  k.type = static_cast<key_type>(t);
  auto w = r.blob();
  k.wrapped.assign(w.begin(), w.end());
  return read_public_key(r, k.pub);
}

}  // namespace

std::optional<wrapped_key> decode_wrapped_key(byte_view in) {
  reader r(in);
  wrapped_key k;
  if (!read_wrapped_key(r, k)) return std::nullopt;
  return done(r, std::move(k));
}

std::optional<import_key_request> decode_import_key(byte_view in) {
  reader r(in);
  import_key_request q;
  q.label = r.str();
  if (!read_wrapped_key(r, q.key)) return std::nullopt;
  return done(r, std::move(q));
}

std::optional<public_key_blob> decode_public_key(byte_view in) {
  reader r(in);
  public_key_blob k;
  if (!read_public_key(r, k)) return std::nullopt;
  return done(r, std::move(k));
}

std::optional<std::uint32_t> decode_count(byte_view in) {
  reader r(in);
  std::uint32_t n = r.u32();
  return done(r, std::move(n));
}

std::optional<std::vector<metadata_record>> decode_metadata_list(byte_view in) {
  reader r(in);
  std::uint32_t n = r.u32();
  std::vector<metadata_record> out;
  for (std::uint32_t i = 0; i < n && !r.failed(); ++i) {
    metadata_record m;
    m.name = r.str();
    auto v = r.blob();
    m.value.assign(v.begin(), v.end());
    out.push_back(std::move(m));
  }
  return done(r, std::move(out));
}

}  // namespace hsmb::wire
