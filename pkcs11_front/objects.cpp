#include "pkcs11_front/objects.h"

#include <cstring>

#include "pkcs11_front/certificates.h"
#include "pkcs11_front/mechanisms.h"

namespace hsmb::p11 {
namespace {

bytes of_bool(bool b) { return bytes{static_cast<std::uint8_t>(b ? CK_TRUE : CK_FALSE)}; }
bytes of_ulong(CK_ULONG v) {
  bytes out(sizeof v);
  std::memcpy(out.data(), &v, sizeof v);
  return out;
}
bytes of_text(std::string_view s) { return bytes(s.begin(), s.end()); }

CK_KEY_TYPE key_type_of(key_family f) {
  switch (f) {
    case key_family::ec: return CKK_EC;
    case key_family::rsa: return CKK_RSA;
    case key_family::ed25519: return CKK_EC_EDWARDS;
    case key_family::aes: return CKK_AES;
    case key_family::hmac: return CKK_GENERIC_SECRET;
  }
  return CKK_GENERIC_SECRET;
}

CK_MECHANISM_TYPE keygen_of(key_family f) {
  switch (f) {
    case key_family::ec: return CKM_EC_KEY_PAIR_GEN;
    case key_family::rsa: return CKM_RSA_PKCS_KEY_PAIR_GEN;
    case key_family::ed25519: return CKM_EC_EDWARDS_KEY_PAIR_GEN;
    case key_family::aes: return CKM_AES_KEY_GEN;
    case key_family::hmac: return CKM_GENERIC_SECRET_KEY_GEN;
  }
  return CKM_GENERIC_SECRET_KEY_GEN;
}

bytes allowed_mechanisms(const object& o) {
  bytes out;
  for (auto& m : all_mechanisms()) {
    if (!takes_key(m, o.key->family)) continue;
    auto v = of_ulong(m.type);
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

using result = std::expected<bytes, CK_RV>;
const auto invalid = std::unexpected(CKR_ATTRIBUTE_TYPE_INVALID);
const auto sensitive = std::unexpected(CKR_ATTRIBUTE_SENSITIVE);

result private_attribute(const object& o, CK_ATTRIBUTE_TYPE t) {
  auto f = o.key->family;
  switch (t) {
    case CKA_SUBJECT: return bytes{};
    case CKA_SENSITIVE: case CKA_ALWAYS_SENSITIVE: case CKA_NEVER_EXTRACTABLE: case CKA_SIGN: return of_bool(true);
    case CKA_DECRYPT: case CKA_SIGN_RECOVER: case CKA_UNWRAP: case CKA_EXTRACTABLE: case CKA_WRAP_WITH_TRUSTED:
    case CKA_ALWAYS_AUTHENTICATE: return of_bool(false);
    case CKA_PUBLIC_KEY_INFO: return o.pub->spki;
    case CKA_MODULUS: if (f == key_family::rsa) return o.pub->modulus; return invalid;
    case CKA_PUBLIC_EXPONENT: if (f == key_family::rsa) return o.pub->public_exponent; return invalid;
    case CKA_PRIVATE_EXPONENT: case CKA_PRIME_1: case CKA_PRIME_2: case CKA_EXPONENT_1: case CKA_EXPONENT_2:
    case CKA_COEFFICIENT: if (f == key_family::rsa) return sensitive; return invalid;
    case CKA_EC_PARAMS: if (f != key_family::rsa) return o.pub->ec_params; return invalid;
    case CKA_EC_POINT: if (f != key_family::rsa) return o.pub->ec_point; return invalid;  // what libp11 and Java look for
    case CKA_VALUE: if (f != key_family::rsa) return sensitive; return invalid;
    default: return invalid;
  }
}

result public_attribute(const object& o, CK_ATTRIBUTE_TYPE t) {
  auto f = o.key->family;
  switch (t) {
    case CKA_SUBJECT: return bytes{};
    case CKA_VERIFY: return of_bool(true);
    case CKA_ENCRYPT: case CKA_VERIFY_RECOVER: case CKA_WRAP: case CKA_TRUSTED: return of_bool(false);
    case CKA_PUBLIC_KEY_INFO: return o.pub->spki;
    case CKA_MODULUS: if (f == key_family::rsa) return o.pub->modulus; return invalid;
    case CKA_MODULUS_BITS: if (f == key_family::rsa) return of_ulong(o.pub->modulus_bits); return invalid;
    case CKA_PUBLIC_EXPONENT: if (f == key_family::rsa) return o.pub->public_exponent; return invalid;
    case CKA_EC_PARAMS: if (f != key_family::rsa) return o.pub->ec_params; return invalid;
    case CKA_EC_POINT: if (f != key_family::rsa) return o.pub->ec_point; return invalid;
    default: return invalid;
  }
}

result secret_attribute(const object& o, CK_ATTRIBUTE_TYPE t) {
  bool aes = o.key->family == key_family::aes;
  switch (t) {
    case CKA_SENSITIVE: case CKA_ALWAYS_SENSITIVE: case CKA_NEVER_EXTRACTABLE: case CKA_SIGN: case CKA_VERIFY:
      return of_bool(true);
    case CKA_ENCRYPT: case CKA_DECRYPT: return of_bool(aes);
    case CKA_WRAP: case CKA_UNWRAP: case CKA_EXTRACTABLE: case CKA_TRUSTED: case CKA_WRAP_WITH_TRUSTED:
      return of_bool(false);
    case CKA_VALUE_LEN: return of_ulong(secret_value_len(*o.key));
    case CKA_VALUE: return sensitive;
    default: return invalid;
  }
}

// CKA_VALUE comes from the module's certificate cache (get_attribute_value): it costs a signature.
result certificate_attribute(const object& o, CK_ATTRIBUTE_TYPE t) {
  switch (t) {
    case CKA_CLASS: return of_ulong(CKO_CERTIFICATE);
    case CKA_TOKEN: return of_bool(true);
    case CKA_PRIVATE: case CKA_MODIFIABLE: case CKA_COPYABLE: case CKA_DESTROYABLE: case CKA_TRUSTED: return of_bool(false);
    case CKA_LABEL: return of_text(o.key->name);
    case CKA_ID: return of_text(o.id());
    case CKA_CERTIFICATE_TYPE: return of_ulong(CKC_X_509);
    case CKA_CERTIFICATE_CATEGORY: return of_ulong(0);  // unspecified
    case CKA_SUBJECT: case CKA_ISSUER: return certificate_name(o);
    case CKA_SERIAL_NUMBER: return certificate_serial(o);
    case CKA_START_DATE: case CKA_END_DATE: return bytes{};
    case CKA_PUBLIC_KEY_INFO: return o.pub->spki;
    default: return invalid;
  }
}

}  // namespace

std::string object::id() const { return key->name + ":v" + std::to_string(version); }

std::expected<bytes, CK_RV> attribute(const object& o, CK_ATTRIBUTE_TYPE t) {
  if (o.cls == CKO_CERTIFICATE) return certificate_attribute(o, t);
  switch (t) {
    case CKA_CLASS: return of_ulong(o.cls);
    case CKA_TOKEN: return of_bool(true);
    case CKA_PRIVATE: return of_bool(o.cls != CKO_PUBLIC_KEY);  // access is the broker's policy, per caller
    case CKA_MODIFIABLE: case CKA_COPYABLE: case CKA_DERIVE: return of_bool(false);
    case CKA_DESTROYABLE: return of_bool(o.key->deletion_allowed);
    case CKA_LABEL: return of_text(o.key->name);
    case CKA_ID: return of_text(o.id());
    case CKA_KEY_TYPE: return of_ulong(key_type_of(o.key->family));
    case CKA_START_DATE: case CKA_END_DATE: return bytes{};
    case CKA_LOCAL: return of_bool(true);  // generated inside an HSM
    case CKA_KEY_GEN_MECHANISM: return of_ulong(keygen_of(o.key->family));
    case CKA_ALLOWED_MECHANISMS: return allowed_mechanisms(o);
    default: break;
  }
  if (o.cls == CKO_PRIVATE_KEY) return private_attribute(o, t);
  if (o.cls == CKO_PUBLIC_KEY) return public_attribute(o, t);
  return secret_attribute(o, t);
}

bool matches(const object& o, std::span<const CK_ATTRIBUTE> tmpl) {
  for (auto& a : tmpl) {
    auto v = attribute(o, a.type);
    if (!v || v->size() != a.ulValueLen) return false;
    if (a.ulValueLen && (!a.pValue || std::memcmp(v->data(), a.pValue, a.ulValueLen) != 0)) return false;
  }
  return true;
}

std::vector<object> object_table::add(const std::shared_ptr<const key_info>& k) {
  std::vector<object> out;
  for (auto it = k->versions.begin(); it != k->versions.end(); ++it) {
    auto classes = is_asymmetric(k->family) ? std::vector<CK_OBJECT_CLASS>{CKO_PRIVATE_KEY, CKO_PUBLIC_KEY}
                                            : std::vector<CK_OBJECT_CLASS>{CKO_SECRET_KEY};
    if (is_asymmetric(k->family) && certificates_enabled()) classes.push_back(CKO_CERTIFICATE);
    for (auto cls : classes) {
      auto [h, fresh] = handles_.try_emplace(ident{k->name, it->first, cls}, next_);
      if (fresh) ++next_;
      object o{h->second, cls, k, it->first, it->second};
      objects_[o.handle] = o;
      out.push_back(std::move(o));
    }
  }
  return out;
}

void object_table::remove_key(const std::string& name) {
  for (auto it = handles_.begin(); it != handles_.end();) {
    if (std::get<0>(it->first) == name) {
      objects_.erase(it->second);
      it = handles_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<object> object_table::find(CK_OBJECT_HANDLE h) const {
  auto it = objects_.find(h);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

void object_table::clear() {
  handles_.clear();
  objects_.clear();
}

}  // namespace hsmb::p11
