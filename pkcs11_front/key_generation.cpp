#include "pkcs11_front/key_generation.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "pkcs11_front/module_state.h"
#include "pkcs11_front/objects.h"

namespace hsmb::p11 {
namespace json = boost::json;
namespace {

const CK_ATTRIBUTE* find(std::span<const CK_ATTRIBUTE> t, CK_ATTRIBUTE_TYPE type) {
  auto it = std::find_if(t.begin(), t.end(), [&](auto& a) { return a.type == type; });
  return it == t.end() ? nullptr : &*it;
}

bytes value_of(const CK_ATTRIBUTE& a) {
  auto* p = static_cast<const std::uint8_t*>(a.pValue);
  return p ? bytes(p, p + a.ulValueLen) : bytes{};
}

std::optional<CK_ULONG> ulong_of(const CK_ATTRIBUTE* a) {
  if (!a || a->ulValueLen != sizeof(CK_ULONG) || !a->pValue) return std::nullopt;
  CK_ULONG v;
  std::memcpy(&v, a->pValue, sizeof v);
  return v;
}

// CKA_LABEL of either template (they must agree): the broker key's name.
std::expected<std::string, CK_RV> label_of(std::span<const CK_ATTRIBUTE> a, std::span<const CK_ATTRIBUTE> b) {
  std::optional<std::string> name;
  for (auto t : {a, b}) {
    if (auto* l = find(t, CKA_LABEL)) {
      auto v = value_of(*l);
      std::string s(v.begin(), v.end());
      if (name && *name != s) return std::unexpected(CKR_TEMPLATE_INCONSISTENT);
      name = s;
    }
  }
  if (!name) {
    debug("key generation: CKA_LABEL (the broker key's name) is required");
    return std::unexpected(CKR_TEMPLATE_INCOMPLETE);
  }
  if (name->empty()) return std::unexpected(CKR_ATTRIBUTE_VALUE_INVALID);
  return *name;
}

std::string hex(CK_ULONG v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%lx", v);
  return buf;
}

// Every attribute of `t` is one the new object will have, with that value. `handled`: read by
// the caller (generation parameters).
CK_RV check_template(std::span<const CK_ATTRIBUTE> t, const object& will_be, std::initializer_list<CK_ATTRIBUTE_TYPE> handled) {
  for (auto& a : t) {
    if (std::find(handled.begin(), handled.end(), a.type) != handled.end()) continue;
    if (a.type == CKA_MODULUS || a.type == CKA_EC_POINT || a.type == CKA_PUBLIC_KEY_INFO || a.type == CKA_VALUE ||
        a.type == CKA_KEY_GEN_MECHANISM || a.type == CKA_LOCAL) {
      debug("key generation: attribute " + hex(a.type) + " is the key's own, not the caller's");
      return CKR_ATTRIBUTE_READ_ONLY;
    }
    auto v = attribute(will_be, a.type);
    if (!v) {
      debug("key generation: attribute " + hex(a.type) + " does not apply to this object");
      return v.error() == CKR_ATTRIBUTE_SENSITIVE ? CKR_ATTRIBUTE_READ_ONLY : CKR_ATTRIBUTE_TYPE_INVALID;
    }
    if (v->size() != a.ulValueLen || (a.ulValueLen && std::memcmp(v->data(), a.pValue, a.ulValueLen) != 0)) {
      debug("key generation: attribute " + hex(a.type) + " asks for what a broker key is not (always sensitive, never extractable, sign-only, ...)");
      return CKR_ATTRIBUTE_VALUE_INVALID;
    }
  }
  return CKR_OK;
}

std::optional<std::string> curve_type(const CK_ATTRIBUTE* params, CK_MECHANISM_TYPE mech) {
  if (mech == CKM_EC_EDWARDS_KEY_PAIR_GEN) {
    if (!params) return "ed25519";
    auto v = value_of(*params);
    static const std::string printable = std::string("\x13\x0c") + "edwards25519";
    if (v == ed25519_oid() || std::string(v.begin(), v.end()) == printable) return "ed25519";
    return std::nullopt;
  }
  if (!params) return std::nullopt;
  auto v = value_of(*params);
  if (v == p256_oid()) return "ecdsa-p256";
  if (v == p384_oid()) return "ecdsa-p384";
  return std::nullopt;
}

// Makes the key unless the name is taken (creation is idempotent in the broker: an existing key
// would come back silently, which is not what a caller generating a new key asked for).
std::expected<std::vector<object>, CK_RV> create(const std::string& name, const std::string& type) {
  auto& st = state();
  auto existing = st.call("GET", "/v1/transit/keys/" + path_segment(name), "");
  if (!existing) return std::unexpected(existing.error());
  if (existing->status == 200) {
    debug("key generation: a key named \"" + name + "\" exists already");
    return std::unexpected(CKR_ATTRIBUTE_VALUE_INVALID);
  }
  if (existing->status != 404) return std::unexpected(st.status_rv(*existing, purpose::generate));
  auto r = st.call("POST", "/v1/transit/keys/" + path_segment(name), json::serialize(json::object{{"type", type}}));
  if (!r) return std::unexpected(r.error());
  if (r->status != 200 && r->status != 204) return std::unexpected(st.status_rv(*r, purpose::generate));
  auto objects = st.load_key(name);
  if (!objects) return std::unexpected(objects.error());
  if (objects->empty()) return std::unexpected(CKR_GENERAL_ERROR);
  return objects;
}

object would_be(const std::string& name, const std::string& type, CK_OBJECT_CLASS cls) {
  auto k = std::make_shared<key_info>();
  k->name = name;
  k->type = type;
  k->family = *family_of(type);
  k->latest = 1;
  static const auto no_key = std::make_shared<const public_key_info>();
  return object{0, cls, k, 1, no_key};
}

}  // namespace

std::expected<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>, CK_RV> generate_key_pair(
    const CK_MECHANISM& mech, std::span<const CK_ATTRIBUTE> pub, std::span<const CK_ATTRIBUTE> priv) {
  if (mech.pParameter || mech.ulParameterLen) return std::unexpected(CKR_MECHANISM_PARAM_INVALID);
  auto name = label_of(pub, priv);
  if (!name) return std::unexpected(name.error());
  std::string type;
  switch (mech.mechanism) {
    case CKM_EC_KEY_PAIR_GEN:
    case CKM_EC_EDWARDS_KEY_PAIR_GEN: {
      auto* params = find(pub, CKA_EC_PARAMS);
      if (!params) params = find(priv, CKA_EC_PARAMS);
      if (!params && mech.mechanism == CKM_EC_KEY_PAIR_GEN) return std::unexpected(CKR_TEMPLATE_INCOMPLETE);
      auto t = curve_type(params, mech.mechanism);
      if (!t) return std::unexpected(CKR_CURVE_NOT_SUPPORTED);
      type = *t;
      break;
    }
    case CKM_RSA_PKCS_KEY_PAIR_GEN: {
      auto bits = ulong_of(find(pub, CKA_MODULUS_BITS));
      if (!bits) return std::unexpected(CKR_TEMPLATE_INCOMPLETE);
      if (*bits != 2048 && *bits != 3072 && *bits != 4096) return std::unexpected(CKR_KEY_SIZE_RANGE);
      type = "rsa-" + std::to_string(*bits);
      if (auto* e = find(pub, CKA_PUBLIC_EXPONENT)) {
        auto v = value_of(*e);
        auto nz = std::find_if(v.begin(), v.end(), [](auto b) { return b != 0; });
        if (bytes(nz, v.end()) != bytes{0x01, 0x00, 0x01}) return std::unexpected(CKR_ATTRIBUTE_VALUE_INVALID);  // 65537 only
      }
      break;
    }
    default: return std::unexpected(CKR_MECHANISM_INVALID);
  }
  if (CK_RV rv = check_template(pub, would_be(*name, type, CKO_PUBLIC_KEY),
                                {CKA_LABEL, CKA_EC_PARAMS, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT});
      rv != CKR_OK)
    return std::unexpected(rv);
  if (CK_RV rv = check_template(priv, would_be(*name, type, CKO_PRIVATE_KEY), {CKA_LABEL, CKA_EC_PARAMS}); rv != CKR_OK)
    return std::unexpected(rv);
  auto objects = create(*name, type);
  if (!objects) return std::unexpected(objects.error());
  CK_OBJECT_HANDLE hpub = 0, hpriv = 0;
  for (auto& o : *objects) {
    if (o.version != o.key->latest) continue;
    (o.cls == CKO_PUBLIC_KEY ? hpub : hpriv) = o.handle;
  }
  if (!hpub || !hpriv) return std::unexpected(CKR_GENERAL_ERROR);
  return std::pair{hpub, hpriv};
}

std::expected<CK_OBJECT_HANDLE, CK_RV> generate_key(const CK_MECHANISM& mech, std::span<const CK_ATTRIBUTE> tmpl) {
  if (mech.pParameter || mech.ulParameterLen) return std::unexpected(CKR_MECHANISM_PARAM_INVALID);
  auto name = label_of(tmpl, {});
  if (!name) return std::unexpected(name.error());
  auto len = ulong_of(find(tmpl, CKA_VALUE_LEN));
  if (find(tmpl, CKA_VALUE_LEN) && !len) return std::unexpected(CKR_ATTRIBUTE_VALUE_INVALID);
  std::string type;
  if (mech.mechanism == CKM_AES_KEY_GEN) {
    if (!len) return std::unexpected(CKR_TEMPLATE_INCOMPLETE);
    if (*len != 16 && *len != 32) return std::unexpected(CKR_KEY_SIZE_RANGE);
    type = *len == 16 ? "aes128-gcm96" : "aes256-gcm96";
  } else if (mech.mechanism == CKM_GENERIC_SECRET_KEY_GEN) {
    if (len && *len != 64) return std::unexpected(CKR_KEY_SIZE_RANGE);  // the broker's HMAC keys are 64 bytes
    type = "hmac";
  } else {
    return std::unexpected(CKR_MECHANISM_INVALID);
  }
  if (CK_RV rv = check_template(tmpl, would_be(*name, type, CKO_SECRET_KEY), {CKA_LABEL, CKA_VALUE_LEN}); rv != CKR_OK)
    return std::unexpected(rv);
  auto objects = create(*name, type);
  if (!objects) return std::unexpected(objects.error());
  for (auto& o : *objects)
    if (o.version == o.key->latest) return o.handle;
  return std::unexpected(CKR_GENERAL_ERROR);
}

}  // namespace hsmb::p11
