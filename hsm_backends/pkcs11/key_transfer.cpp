// Copies of keys between members: wrap under the cluster key on one token, unwrap on another.

#include "hsm_backends/pkcs11/objects.h"
#include "hsm_backends/pkcs11/pkcs11_backend.h"
#include "hsm_backends/pkcs11/templates.h"

namespace hsmb::pkcs11 {
namespace {

// KW for secret keys; KWP for private keys, whose PKCS#8 encoding is not a multiple of 8 bytes.
CK_MECHANISM wrap_mechanism(key_type type) {
  return {is_asymmetric(type) ? CKM_AES_KEY_WRAP_PAD : CKM_AES_KEY_WRAP, nullptr, 0};
}

CK_OBJECT_CLASS key_class(key_type type) { return is_asymmetric(type) ? CKO_PRIVATE_KEY : CKO_SECRET_KEY; }

hsm_result<bytes> wrap(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, CK_MECHANISM mech, CK_OBJECT_HANDLE wrapping,
                       CK_OBJECT_HANDLE key, const std::string& label) {
  CK_ULONG len = 0;
  if (CK_RV rv = fn->C_WrapKey(s, &mech, wrapping, key, nullptr, &len); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_WrapKey", label));
  bytes out(len);
  if (CK_RV rv = fn->C_WrapKey(s, &mech, wrapping, key, out.data(), &len); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_WrapKey", label));
  out.resize(len);
  return out;
}

}  // namespace

hsm_result<CK_OBJECT_HANDLE> pkcs11_backend::cluster_key(CK_SESSION_HANDLE s) {
  const std::string label(cluster_key_label);
  auto h = cache_.find(fn(), s, label, CKO_SECRET_KEY);
  if (!h && h.error().ckr == ckr_object_not_found)
    return fail<CK_OBJECT_HANDLE>(ckr_no_cluster_key, "this token holds no cluster key: enroll it (hsm-broker --enroll)");
  return h;
}

hsm_result<wrapped_key> pkcs11_backend::export_key(const std::string& label, key_type type) {
  return guarded("export_key", [&]() -> hsm_result<wrapped_key> {
    auto s = session();
    if (!s) return std::unexpected(s.error());
    auto cluster = cluster_key(s->get());
    if (!cluster) return std::unexpected(cluster.error());
    wrapped_key out{type, {}, {}};
    auto blob = with_object(s->get(), label, key_class(type), [&](CK_OBJECT_HANDLE key) {
      return wrap(fn(), s->get(), wrap_mechanism(type), *cluster, key, label);
    });
    if (!blob) return std::unexpected(blob.error());
    out.wrapped = std::move(*blob);
    if (is_asymmetric(type)) {
      auto pub = with_object(s->get(), label, CKO_PUBLIC_KEY,
                             [&](CK_OBJECT_HANDLE h) { return read_public(s->get(), h, label); });
      if (!pub) return std::unexpected(pub.error());
      out.pub = std::move(*pub);
    }
    return out;
  });
}

hsm_result<void> pkcs11_backend::import_objects(CK_SESSION_HANDLE s, const std::string& label, const wrapped_key& key,
                                                CK_OBJECT_HANDLE cluster) {
  auto cls = key_class(key.type);
  // What the token holds now, not a handle cached before someone removed the object (a repair
  // puts back exactly such a copy).
  cache_.drop(label, cls);
  cache_.drop(label, CKO_PUBLIC_KEY);
  if (auto existing = cache_.find(fn(), s, label, cls); existing)
    return fail<void>(ckr_object_exists, "an object labelled '" + label + "' already exists");
  else if (existing.error().ckr != ckr_object_not_found)
    return std::unexpected(existing.error());
  auto id = unique_object_id(label);
  attribute_list t = unwrap_template(label, key.type, id);
  CK_MECHANISM mech = wrap_mechanism(key.type);
  CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
  auto* data = const_cast<std::uint8_t*>(key.wrapped.data());
  if (CK_RV rv = fn()->C_UnwrapKey(s, &mech, cluster, data, key.wrapped.size(), t.data(), t.size(), &h); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_UnwrapKey", label));
  scoped_object made(fn(), s, h);
  if (is_asymmetric(key.type)) {
    attribute_list pt = public_import_template(label, key.type, key.pub, id);
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
    if (CK_RV rv = fn()->C_CreateObject(s, pt.data(), pt.size(), &pub); rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_CreateObject", label));
    cache_.put(label, CKO_PUBLIC_KEY, pub);
  }
  cache_.put(label, cls, made.release());
  return {};
}

hsm_result<void> pkcs11_backend::import_key(const std::string& label, const wrapped_key& key) {
  return guarded("import_key", [&]() -> hsm_result<void> {
    if (label.empty()) return fail<void>(CKR_ATTRIBUTE_VALUE_INVALID, "empty key label");
    if (is_asymmetric(key.type) && key.pub.k == public_key_blob::kind::none)
      return fail<void>(CKR_TEMPLATE_INCOMPLETE, "import of a key pair without its public key");
    auto s = session();
    if (!s) return std::unexpected(s.error());
    auto cluster = cluster_key(s->get());
    if (!cluster) return std::unexpected(cluster.error());
    return import_objects(s->get(), label, key, *cluster);
  });
}

// The cluster key's KW of an all-zero AES key: equal on members sharing the cluster key, and
// useless to anyone else (the zero key protects nothing).
hsm_result<bytes> pkcs11_backend::cluster_key_check() {
  return guarded("cluster_key_check", [&]() -> hsm_result<bytes> {
    auto s = session();
    if (!s) return std::unexpected(s.error());
    auto cluster = cluster_key(s->get());
    if (!cluster) return std::unexpected(cluster.error());
    std::uint8_t zero[32] = {};
    attribute_list t;
    t.add_ulong(CKA_CLASS, CKO_SECRET_KEY).add_ulong(CKA_KEY_TYPE, CKK_AES).add_bool(CKA_TOKEN, false)
        .add_bool(CKA_PRIVATE, false).add_bool(CKA_SENSITIVE, false).add_bool(CKA_EXTRACTABLE, true)
        .add(CKA_VALUE, byte_view(zero, sizeof zero));
    CK_OBJECT_HANDLE probe = CK_INVALID_HANDLE;
    if (CK_RV rv = fn()->C_CreateObject(s->get(), t.data(), t.size(), &probe); rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_CreateObject", "cluster key check"));
    scoped_object temporary(fn(), s->get(), probe);
    return wrap(fn(), s->get(), {CKM_AES_KEY_WRAP, nullptr, 0}, *cluster, probe, "cluster key check");
  });
}

}  // namespace hsmb::pkcs11
