// hsm_backend over a PKCS#11 library: one token, a pool of logged-in sessions, cached object handles.
#pragma once

#include <memory>
#include <mutex>

#include "hsm_backends/backend.h"
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
  hsm_result<bytes> sign(const std::string& label, sign_mechanism mech, hash_alg hash, byte_view data) override;
  hsm_result<bytes> hmac(const std::string& label, hash_alg hash, byte_view data) override;
  hsm_result<bytes> key_check_value(const std::string& label, key_type type) override;

 private:
  CK_FUNCTION_LIST* fn() const { return pool_->fn(); }
  hsm_result<session_pool::lease> session();
  // Runs op(handle) on the object (label, cls); once more with a fresh search if the cached
  // handle went stale (object destroyed by another process).
  template <class F>
  auto with_object(CK_SESSION_HANDLE s, const std::string& label, CK_OBJECT_CLASS cls, F&& op)
      -> decltype(op(CK_OBJECT_HANDLE{}));
  hsm_result<public_key_blob> read_public(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const std::string& label);
  hsm_result<bytes> sign_with(CK_SESSION_HANDLE s, const std::string& label, CK_OBJECT_CLASS cls,
                              CK_MECHANISM mech, byte_view input);
  hsm_result<void> create_metadata(CK_SESSION_HANDLE s, const std::string& label, byte_view value);
  hsm_result<void> replace_metadata(CK_SESSION_HANDLE s, const std::string& label, CK_OBJECT_HANDLE old,
                                    byte_view value);
  hsm_result<std::uint32_t> destroy_class(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const std::string& prefix);

  std::unique_ptr<session_pool> pool_;  // null until open() succeeds
  object_cache cache_;
  nonce_pool nonces_;
  std::mutex metadata_mutex_;  // one writer at a time, so a record is never created twice
};

}  // namespace pkcs11
}  // namespace hsmb
