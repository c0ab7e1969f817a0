// The cluster-key ceremony (docs/replication.md): only the SO can make a key CKA_TRUSTED, and
// only on public session objects, so each step switches between SO and user logins. Runs in a
// worker of its own that serves nothing else, because a logout ends every session's login.
#include "hsm_backends/pkcs11/objects.h"
#include "hsm_backends/pkcs11/pkcs11_backend.h"
#include "hsm_backends/pkcs11/templates.h"

namespace hsmb::pkcs11 {
namespace {

// SoftHSM2 (and others) support RSA-OAEP with SHA-1 only; OAEP-SHA1 is still sound for wrapping.
CK_RSA_PKCS_OAEP_PARAMS oaep_params() { return {CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, nullptr, 0}; }

// The user copies the SO's public session key to a private token object, then drops the session key.
hsm_result<void> keep_as_token_object(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, scoped_object& session_key) {
  attribute_list t = cluster_key_copy_template();
  CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
  if (CK_RV rv = fn->C_CopyObject(s, session_key.get(), t.data(), t.size(), &copy); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_CopyObject", cluster_key_label));
  return {};
}

}  // namespace

hsm_result<session_pool::lease> pkcs11_backend::ceremony_session() {
  if (so_pin_.empty()) return fail<session_pool::lease>(CKR_USER_TYPE_INVALID, "the ceremony needs the SO PIN");
  return session();
}

hsm_result<void> pkcs11_backend::login_as(CK_SESSION_HANDLE s, CK_USER_TYPE who) {
  fn()->C_Logout(s);  // nobody logged in is fine
  cache_.clear();
  const secure_string& pin = who == CKU_SO ? so_pin_ : user_pin_;
  auto* p = reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin.data()));
  if (CK_RV rv = fn()->C_Login(s, who, p, pin.size()); rv != CKR_OK)
    return std::unexpected(p11_error(rv, who == CKU_SO ? "C_Login(SO)" : "C_Login(USER)"));
  return {};
}

hsm_result<void> pkcs11_backend::create_cluster_key() {
  return guarded("create_cluster_key", [&]() -> hsm_result<void> {
    auto s = ceremony_session();
    if (!s) return std::unexpected(s.error());
    if (auto user = login_as(s->get(), CKU_USER); !user) return user;
    if (cluster_key(s->get())) return fail<void>(ckr_object_exists, "this token already holds a cluster key");
    if (auto so = login_as(s->get(), CKU_SO); !so) return so;
    attribute_list t = cluster_key_session_template(true);
    CK_MECHANISM mech{CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    if (CK_RV rv = fn()->C_GenerateKey(s->get(), &mech, t.data(), t.size(), &h); rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_GenerateKey", cluster_key_label));
    scoped_object session_key(fn(), s->get(), h);
    if (auto user = login_as(s->get(), CKU_USER); !user) return user;
    return keep_as_token_object(fn(), s->get(), session_key);
  });
}

hsm_result<public_key_blob> pkcs11_backend::create_transport_key() {
  return guarded("create_transport_key", [&]() -> hsm_result<public_key_blob> {
    auto s = ceremony_session();
    if (!s) return std::unexpected(s.error());
    if (auto so = login_as(s->get(), CKU_SO); !so) return std::unexpected(so.error());
    keygen_spec spec = transport_key_template();
    CK_MECHANISM mech{spec.mechanism, nullptr, 0};
    auto &pt = spec.public_template, &st = spec.secret_template;
    if (CK_RV rv = fn()->C_GenerateKeyPair(s->get(), &mech, pt.data(), pt.size(), st.data(), st.size(),
                                           &transport_public_, &transport_private_);
        rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_GenerateKeyPair", "transport key"));
    return read_public(s->get(), transport_public_, "transport key");
  });
}

hsm_result<bytes> pkcs11_backend::export_cluster_key(const public_key_blob& transport) {
  return guarded("export_cluster_key", [&]() -> hsm_result<bytes> {
    if (transport.k != public_key_blob::kind::rsa) return fail<bytes>(CKR_KEY_TYPE_INCONSISTENT, "transport key must be RSA");
    auto s = ceremony_session();
    if (!s) return std::unexpected(s.error());
    if (auto so = login_as(s->get(), CKU_SO); !so) return std::unexpected(so.error());
    attribute_list t = trusted_transport_template(transport);
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    if (CK_RV rv = fn()->C_CreateObject(s->get(), t.data(), t.size(), &h); rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_CreateObject", "trusted transport key"));
    scoped_object trusted(fn(), s->get(), h);
    if (auto user = login_as(s->get(), CKU_USER); !user) return std::unexpected(user.error());
    auto cluster = cluster_key(s->get());
    if (!cluster) return std::unexpected(cluster.error());
    auto params = oaep_params();
    CK_MECHANISM mech{CKM_RSA_PKCS_OAEP, &params, sizeof params};
    CK_ULONG len = 0;
    if (CK_RV rv = fn()->C_WrapKey(s->get(), &mech, h, *cluster, nullptr, &len); rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_WrapKey", cluster_key_label));
    bytes out(len);
    if (CK_RV rv = fn()->C_WrapKey(s->get(), &mech, h, *cluster, out.data(), &len); rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_WrapKey", cluster_key_label));
    out.resize(len);
    return out;
  });
}

hsm_result<void> pkcs11_backend::import_cluster_key(byte_view wrapped) {
  return guarded("import_cluster_key", [&]() -> hsm_result<void> {
    if (transport_private_ == CK_INVALID_HANDLE)
      return fail<void>(CKR_OPERATION_NOT_INITIALIZED, "no transport key: create_transport_key first");
    auto s = ceremony_session();
    if (!s) return std::unexpected(s.error());
    if (auto user = login_as(s->get(), CKU_USER); !user) return user;
    if (cluster_key(s->get())) return fail<void>(ckr_object_exists, "this token already holds a cluster key");
    if (auto so = login_as(s->get(), CKU_SO); !so) return so;
    auto params = oaep_params();
    CK_MECHANISM mech{CKM_RSA_PKCS_OAEP, &params, sizeof params};
    attribute_list t = cluster_key_session_template(false);
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    auto* data = const_cast<std::uint8_t*>(wrapped.data());
    if (CK_RV rv = fn()->C_UnwrapKey(s->get(), &mech, transport_private_, data, wrapped.size(), t.data(), t.size(), &h);
        rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_UnwrapKey", cluster_key_label));
    scoped_object session_key(fn(), s->get(), h);
    scoped_object transport_private(fn(), s->get(), std::exchange(transport_private_, CK_INVALID_HANDLE));
    scoped_object transport_public(fn(), s->get(), std::exchange(transport_public_, CK_INVALID_HANDLE));
    if (auto user = login_as(s->get(), CKU_USER); !user) return user;
    return keep_as_token_object(fn(), s->get(), session_key);
  });
}

}  // namespace hsmb::pkcs11
