// GCM nonces from the HSM's RNG, fetched in batches and each handed out once.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>

#include "common/bytes.h"
#include "hsm_backends/hsm_error.h"
#include "hsm_backends/pkcs11/p11.h"

namespace hsmb::pkcs11 {

// Random rather than counter nonces: a counter cannot be kept unique across members, brokers and
// restarts sharing a key, and random 96-bit nonces are safe far beyond realistic per-key volumes.
class nonce_pool {
 public:
  static constexpr std::size_t nonce_size = 12;
  static constexpr std::size_t batch_size = 128 * nonce_size;  // one C_GenerateRandom per 128 nonces

  using nonce = std::array<std::uint8_t, nonce_size>;
  // Next unused nonce; refills with C_GenerateRandom on session `s` when the batch is used up.
  hsm_result<nonce> take(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s);

 private:
  hsm_result<nonce> draw(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s);
  std::mutex mutex_;
  secure_bytes pool_;
  std::size_t next_ = 0;
};

}  // namespace hsmb::pkcs11
