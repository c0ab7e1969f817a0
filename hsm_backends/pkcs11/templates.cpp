// Attribute templates for key generation.
#include "hsm_backends/pkcs11/templates.h"

#include <array>
#include <cstring>
#include <initializer_list>
#include <chrono>
#include <cstdio>
#include <random>

namespace hsmb::pkcs11 {
namespace {

constexpr std::array<std::uint8_t, 10> oid_prime256v1{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
constexpr std::array<std::uint8_t, 7> oid_secp384r1{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
constexpr std::array<std::uint8_t, 5> oid_ed25519{0x06, 0x03, 0x2b, 0x65, 0x70};  // id-Ed25519, 1.3.101.112
constexpr std::array<std::uint8_t, 3> rsa_exponent{0x01, 0x00, 0x01};

bool equal(byte_view a, byte_view b) { return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0; }

// Attributes every object of a key carries: on the token, private, named by label, and a CKA_ID
// of its own (shared by the two halves of a pair; see unique_object_id).
void add_common(attribute_list& t, const std::string& label, const std::string& id) {
  t.add_bool(CKA_TOKEN, true).add_bool(CKA_PRIVATE, true).add(CKA_LABEL, label).add(CKA_ID, id);
}

// Secret and private keys: sensitive; extractable only by wrapping under a trusted key (for replication).
void add_secret(attribute_list& t, const std::string& label, const std::string& id) {
  add_common(t, label, id);
  t.add_bool(CKA_SENSITIVE, true).add_bool(CKA_EXTRACTABLE, true).add_bool(CKA_WRAP_WITH_TRUSTED, true);
}

// Tokens (SoftHSM2 among them) default unnamed usages to TRUE: a key may do only what its type needs.
void deny(attribute_list& t, std::initializer_list<CK_ATTRIBUTE_TYPE> usages) {
  for (CK_ATTRIBUTE_TYPE u : usages) t.add_bool(u, false);
}

// A secret key of `type` (see add_secret). `size` 0: no CKA_VALUE_LEN, as C_UnwrapKey wants (the
// length comes from the wrapped value).
keygen_spec secret_key(const std::string& label, CK_MECHANISM_TYPE mech, CK_KEY_TYPE type, CK_ULONG size) {
  keygen_spec s{.mechanism = mech};
  add_secret(s.secret_template, label, unique_object_id(label));
  s.secret_template.add_ulong(CKA_CLASS, CKO_SECRET_KEY).add_ulong(CKA_KEY_TYPE, type);
  if (size) s.secret_template.add_ulong(CKA_VALUE_LEN, size);
  return s;
}

keygen_spec aes(const std::string& label, CK_ULONG size) {
  keygen_spec s = secret_key(label, CKM_AES_KEY_GEN, CKK_AES, size);
  s.secret_template.add_bool(CKA_ENCRYPT, true).add_bool(CKA_DECRYPT, true);
  deny(s.secret_template, {CKA_SIGN, CKA_VERIFY, CKA_WRAP, CKA_UNWRAP, CKA_DERIVE});
  return s;
}

// 64 bytes, not 32: SoftHSM2 refuses HMAC keys shorter than the digest (CKR_KEY_SIZE_RANGE for
// SHA-384/512), and Vault lets any hash be used with an hmac key.
keygen_spec generic_hmac(const std::string& label, CK_ULONG size = 64) {
  keygen_spec s = secret_key(label, CKM_GENERIC_SECRET_KEY_GEN, CKK_GENERIC_SECRET, size);
  s.secret_template.add_bool(CKA_SIGN, true).add_bool(CKA_VERIFY, true);
  deny(s.secret_template, {CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP, CKA_DERIVE});
  return s;
}

keygen_spec signing_pair(const std::string& label, CK_MECHANISM_TYPE mech, CK_KEY_TYPE key_type) {
  keygen_spec s{.mechanism = mech, .pair = true};
  auto id = unique_object_id(label);
  add_common(s.public_template, label, id);
  s.public_template.add_ulong(CKA_CLASS, CKO_PUBLIC_KEY).add_ulong(CKA_KEY_TYPE, key_type).add_bool(CKA_VERIFY, true);
  deny(s.public_template, {CKA_ENCRYPT, CKA_WRAP, CKA_DERIVE});
  add_secret(s.secret_template, label, id);
  s.secret_template.add_ulong(CKA_CLASS, CKO_PRIVATE_KEY).add_ulong(CKA_KEY_TYPE, key_type).add_bool(CKA_SIGN, true);
  deny(s.secret_template, {CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE});
  return s;
}

keygen_spec ec(const std::string& label, key_type type) {
  bool edwards = type == key_type::ed25519;
  keygen_spec s = edwards ? signing_pair(label, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKK_EC_EDWARDS)
                          : signing_pair(label, CKM_EC_KEY_PAIR_GEN, CKK_EC);
  s.public_template.add(CKA_EC_PARAMS, ec_params(type));
  return s;
}

keygen_spec rsa(const std::string& label, CK_ULONG bits) {
  keygen_spec s = signing_pair(label, CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_RSA);
  s.public_template.add_ulong(CKA_MODULUS_BITS, bits).add(CKA_PUBLIC_EXPONENT, rsa_exponent);
  return s;
}

}  // namespace

std::string unique_object_id(const std::string& label) {
  static thread_local std::mt19937 rng{std::random_device{}()};
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch()).count();
  char suffix[25];
  std::snprintf(suffix, sizeof suffix, "%016llx%08x", static_cast<unsigned long long>(micros),
                static_cast<unsigned>(rng()));
  return label + "#" + suffix;
}

std::optional<std::chrono::system_clock::time_point> object_id_time(byte_view id) {
  std::string_view text(reinterpret_cast<const char*>(id.data()), id.size());
  auto hash = text.rfind('#');
  if (hash == std::string_view::npos || text.size() - hash - 1 != 24) return std::nullopt;
  unsigned long long micros = 0;
  for (char c : text.substr(hash + 1, 16)) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return std::nullopt;
    micros = micros * 16 + unsigned(d);
  }
  return std::chrono::system_clock::time_point(std::chrono::microseconds(micros));
}

attribute_list& attribute_list::add(CK_ATTRIBUTE_TYPE type, byte_view value) {
  values_.emplace_back(value.begin(), value.end());
  attrs_.push_back(CK_ATTRIBUTE{type, values_.back().data(), values_.back().size()});
  return *this;
}

attribute_list& attribute_list::set(CK_ATTRIBUTE_TYPE type, byte_view value) {
  for (auto& a : attrs_) {
    if (a.type != type) continue;
    for (auto& v : values_) {
      if (v.data() != a.pValue) continue;
      v.assign(value.begin(), value.end());
      a.pValue = v.data();
      a.ulValueLen = v.size();
      return *this;
    }
  }
  return add(type, value);
}

attribute_list& attribute_list::add_template(CK_ATTRIBUTE_TYPE type, attribute_list inner) {
  nested_.push_back(std::make_unique<attribute_list>(std::move(inner)));
  auto& n = *nested_.back();
  attrs_.push_back(CK_ATTRIBUTE{type, n.data(), n.size() * sizeof(CK_ATTRIBUTE)});
  return *this;
}

attribute_list& attribute_list::add_bool(CK_ATTRIBUTE_TYPE type, bool value) {
  CK_BBOOL b = value ? CK_TRUE : CK_FALSE;
  return add(type, byte_view(&b, sizeof b));
}

attribute_list& attribute_list::add_ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
  return add(type, byte_view(reinterpret_cast<const std::uint8_t*>(&value), sizeof value));
}

keygen_spec keygen_template(const std::string& label, key_type type) {
  switch (type) {
    case key_type::aes128_gcm96: return aes(label, 16);
    case key_type::aes256_gcm96: return aes(label, 32);
    case key_type::hmac: return generic_hmac(label);
    case key_type::ecdsa_p256:
    case key_type::ecdsa_p384:
    case key_type::ed25519: return ec(label, type);
    case key_type::rsa_2048: return rsa(label, 2048);
    case key_type::rsa_3072: return rsa(label, 3072);
    case key_type::rsa_4096: return rsa(label, 4096);
  }
  return {};
}

attribute_list unwrap_template(const std::string& label, key_type type, const std::string& id) {
  keygen_spec spec;
  switch (type) {
    case key_type::aes128_gcm96:
    case key_type::aes256_gcm96: spec = aes(label, 0); break;
    case key_type::hmac: spec = generic_hmac(label, 0); break;
    default: spec = keygen_template(label, type);
  }
  spec.secret_template.set(CKA_ID, id);  // the public half imported beside it carries the same
  return std::move(spec.secret_template);
}

namespace {

CK_KEY_TYPE pair_key_type(key_type type) {
  if (is_rsa(type)) return CKK_RSA;
  return type == key_type::ed25519 ? CKK_EC_EDWARDS : CKK_EC;
}

// CKA_EC_POINT as tokens store it: a DER OCTET STRING around the raw point (at most 255 bytes here).
bytes der_octet_string(byte_view raw) {
  bytes out{0x04};
  if (raw.size() >= 0x80) out.push_back(0x81);
  out.push_back(static_cast<std::uint8_t>(raw.size()));
  out.insert(out.end(), raw.begin(), raw.end());
  return out;
}

}  // namespace

attribute_list public_import_template(const std::string& label, key_type type, const public_key_blob& pub,
                                      const std::string& id) {
  attribute_list t;
  add_common(t, label, id);
  t.add_ulong(CKA_CLASS, CKO_PUBLIC_KEY).add_ulong(CKA_KEY_TYPE, pair_key_type(type)).add_bool(CKA_VERIFY, true);
  deny(t, {CKA_ENCRYPT, CKA_WRAP, CKA_DERIVE});
  if (pub.k == public_key_blob::kind::rsa) t.add(CKA_MODULUS, pub.a).add(CKA_PUBLIC_EXPONENT, pub.b);
  else t.add(CKA_EC_PARAMS, pub.a).add(CKA_EC_POINT, der_octet_string(pub.b));
  return t;
}

attribute_list cluster_key_session_template(bool generate) {
  attribute_list keeps_sensitive;
  keeps_sensitive.add_bool(CKA_SENSITIVE, true).add_bool(CKA_WRAP_WITH_TRUSTED, true);
  attribute_list t;
  t.add_ulong(CKA_CLASS, CKO_SECRET_KEY).add_ulong(CKA_KEY_TYPE, CKK_AES).add_bool(CKA_TOKEN, false)
      .add_bool(CKA_PRIVATE, false).add_bool(CKA_TRUSTED, true).add_bool(CKA_SENSITIVE, true)
      .add_bool(CKA_EXTRACTABLE, true).add_bool(CKA_WRAP_WITH_TRUSTED, true).add_bool(CKA_WRAP, true)
      .add_bool(CKA_UNWRAP, true).add(CKA_LABEL, cluster_key_label)
      .add_template(CKA_UNWRAP_TEMPLATE, std::move(keeps_sensitive));
  if (generate) t.add_ulong(CKA_VALUE_LEN, 32);
  deny(t, {CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_DERIVE});
  return t;
}

attribute_list cluster_key_copy_template() {
  attribute_list t;
  t.add_bool(CKA_TOKEN, true).add_bool(CKA_PRIVATE, true).add(CKA_LABEL, cluster_key_label).add(CKA_ID, cluster_key_label);
  return t;
}

keygen_spec transport_key_template() {
  keygen_spec s{.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN, .pair = true};
  s.public_template.add_bool(CKA_TOKEN, false).add_bool(CKA_PRIVATE, false).add_bool(CKA_WRAP, true)
      .add_ulong(CKA_MODULUS_BITS, 3072).add(CKA_PUBLIC_EXPONENT, rsa_exponent);
  deny(s.public_template, {CKA_ENCRYPT, CKA_VERIFY, CKA_DERIVE});
  s.secret_template.add_bool(CKA_TOKEN, false).add_bool(CKA_PRIVATE, false).add_bool(CKA_SENSITIVE, true)
      .add_bool(CKA_EXTRACTABLE, false).add_bool(CKA_UNWRAP, true);
  deny(s.secret_template, {CKA_DECRYPT, CKA_SIGN, CKA_DERIVE});
  return s;
}

attribute_list trusted_transport_template(const public_key_blob& pub) {
  attribute_list t;
  t.add_ulong(CKA_CLASS, CKO_PUBLIC_KEY).add_ulong(CKA_KEY_TYPE, CKK_RSA).add_bool(CKA_TOKEN, false)
      .add_bool(CKA_PRIVATE, false).add_bool(CKA_TRUSTED, true).add_bool(CKA_WRAP, true)
      .add(CKA_MODULUS, pub.a).add(CKA_PUBLIC_EXPONENT, pub.b);
  deny(t, {CKA_ENCRYPT, CKA_VERIFY, CKA_DERIVE});
  return t;
}

byte_view ec_params(key_type type) {
  switch (type) {
    case key_type::ecdsa_p256: return oid_prime256v1;
    case key_type::ecdsa_p384: return oid_secp384r1;
    case key_type::ed25519: return oid_ed25519;
    default: return {};
  }
}

std::size_t ec_point_size(byte_view params) {
  if (equal(params, oid_prime256v1)) return 65;
  if (equal(params, oid_secp384r1)) return 97;
  if (equal(params, oid_ed25519)) return 32;
  return 0;
}

}  // namespace hsmb::pkcs11
