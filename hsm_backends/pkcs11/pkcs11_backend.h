// hsm_backend over a PKCS#11 library: one token, a pool of logged-in sessions, cached object handles.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "hsm_backends/backend.h"
#include "hsm_backends/pkcs11/guarded.h"
#include "hsm_backends/pkcs11/nonce_pool.h"
#include "hsm_backends/pkcs11/objects.h"
#include "hsm_backends/pkcs11/session_pool.h"

namespace hsmb {

std::unique_ptr<hsm_backend> make_pkcs11_backend();

namespace pkcs11 {

class pkcs11_backend : public hsm_backend {
 public:
  hsm_result<token_description> open(const member_settings& settings) override;
  hsm_result<void> probe() override;
  hsm_result<secure_bytes> random(std::size_t n) override;

  hsm_result<public_key_blob> generate_key(const std::string& label, key_type type) override;
  hsm_result<public_key_blob> public_key(const std::string& label) override;
  hsm_result<std::uint32_t> destroy_objects(const std::string& label_prefix) override;

  hsm_result<std::vector<metadata_record>> list_metadata() override;
  hsm_result<void> put_metadata(const std::string& name, byte_view value) override;
  hsm_result<void> delete_metadata(const std::string& name) override;

  hsm_result<bytes> encrypt(const std::string& label, byte_view plaintext, byte_view aad) override;
  hsm_result<secure_bytes> decrypt(const std::string& label, byte_view sealed, byte_view aad) override;
  hsm_result<bytes> sign(const std::string& label, sign_mechanism mech, hash_alg hash, byte_view data,
                         std::uint32_t salt = pss_salt_hash_length) override;
  hsm_result<bytes> hmac(const std::string& label, hash_alg hash, byte_view data) override;
  hsm_result<bytes> key_check_value(const std::string& label, key_type type) override;

  // key_transfer.cpp
  hsm_result<wrapped_key> export_key(const std::string& label, key_type type) override;
  hsm_result<void> import_key(const std::string& label, const wrapped_key& key) override;
  hsm_result<bytes> cluster_key_check() override;

  // cluster_key.cpp: the ceremony, in a worker of its own (it switches between SO and user logins)
  hsm_result<void> create_cluster_key() override;
  hsm_result<public_key_blob> create_transport_key() override;
  hsm_result<bytes> export_cluster_key(const public_key_blob& transport) override;
  hsm_result<void> import_cluster_key(byte_view wrapped) override;

 private:
  CK_FUNCTION_LIST* fn() const { return pool_->fn(); }
  hsm_result<session_pool::lease> session();
  // Runs op(handle) on the object (label, cls); once more with a fresh search if the cached
  // handle went stale (object destroyed by another process).
  template <class F>
  auto with_object(CK_SESSION_HANDLE s, const std::string& label, CK_OBJECT_CLASS cls, F&& op)
      -> decltype(op(CK_OBJECT_HANDLE{})) {
    for (int attempt = 0;; ++attempt) {
      auto h = cache_.find(fn(), s, label, cls);
      if (!h) return std::unexpected(h.error());
      auto r = op(*h);
      if (r || attempt == 1 || !stale_handle(r.error().ckr)) return r;
      cache_.drop(label, cls);
      // The canary's halves are chosen together (public_key); a search for one half alone could
      // pair it with another broker's, so the caller reads the pair afresh instead.
      if (label == canary_label) return std::unexpected(hsm_error{ckr_object_not_found, "the canary pair changed"});
    }
  }
  hsm_result<public_key_blob> read_public(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const std::string& label);
  hsm_result<bytes> sign_with(CK_SESSION_HANDLE s, const std::string& label, CK_OBJECT_CLASS cls,
                              CK_MECHANISM mech, byte_view input);
  hsm_result<void> create_metadata(CK_SESSION_HANDLE s, const std::string& label, byte_view value);
  hsm_result<void> replace_metadata(CK_SESSION_HANDLE s, const std::string& label, CK_OBJECT_HANDLE old,
                                    byte_view value);
  // Removes every canary pair but the one all brokers use (see canary_label), caches both its
  // halves and answers its public one; none when there is no whole pair.
  hsm_result<std::optional<CK_OBJECT_HANDLE>> prune_canaries(CK_SESSION_HANDLE s);
  hsm_result<std::uint32_t> destroy_class(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const std::string& prefix);

  hsm_result<CK_OBJECT_HANDLE> cluster_key(CK_SESSION_HANDLE s);
  hsm_result<void> import_objects(CK_SESSION_HANDLE s, const std::string& label, const wrapped_key& key,
                                  CK_OBJECT_HANDLE cluster);
  // Ceremony only: logs the token in as `who` (CKU_SO or CKU_USER), after logging out whoever was.
  hsm_result<void> login_as(CK_SESSION_HANDLE s, CK_USER_TYPE who);
  hsm_result<session_pool::lease> ceremony_session();

  std::unique_ptr<session_pool> pool_;  // null until open() succeeds
  secure_string user_pin_, so_pin_;     // kept only in a ceremony worker (so_pin given)
  CK_OBJECT_HANDLE transport_public_ = CK_INVALID_HANDLE, transport_private_ = CK_INVALID_HANDLE;
  object_cache cache_;
  nonce_pool nonces_;
  std::mutex metadata_mutex_;  // one writer at a time, so a record is never created twice
};

}  // namespace pkcs11
}  // namespace hsmb
