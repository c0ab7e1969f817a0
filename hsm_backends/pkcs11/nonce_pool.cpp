// Batched HSM randomness for GCM nonces.
#include "hsm_backends/pkcs11/nonce_pool.h"

#include <cstring>

#include "hsm_backends/pkcs11/module.h"

namespace hsmb::pkcs11 {

hsm_result<nonce_pool::nonce> nonce_pool::take(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s) {
  // The all-zero nonce is reserved for key check values (a fixed, empty message): never for data.
  static constexpr nonce zero{};
  for (;;) {
    auto n = draw(fn, s);
    if (!n || *n != zero) return n;
  }
}

hsm_result<nonce_pool::nonce> nonce_pool::draw(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s) {
  std::lock_guard lock(mutex_);
  if (next_ + nonce_size > pool_.size()) {
    pool_.assign(batch_size, 0);
    next_ = 0;
    if (CK_RV rv = fn->C_GenerateRandom(s, pool_.data(), pool_.size()); rv != CKR_OK) {
      pool_.clear();
      return std::unexpected(p11_error(rv, "C_GenerateRandom"));
    }
  }
  nonce n;
  std::memcpy(n.data(), pool_.data() + next_, nonce_size);
  secure_wipe(pool_.data() + next_, nonce_size);  // so no nonce can be handed out twice
  next_ += nonce_size;
  return n;
}

}  // namespace hsmb::pkcs11
