#include "api/audit/audit_key.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"

namespace hsmb::api::audit {

std::string audit_key::hash(std::string_view value) const {
  if (!key_) return std::string(unavailable_hash);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key_->data(), static_cast<int>(key_->size()), reinterpret_cast<const unsigned char*>(value.data()),
       value.size(), out, &n);
  return "hmac-sha256:" + hex_encode(byte_view(out, n));
}

}  // namespace hsmb::api::audit
