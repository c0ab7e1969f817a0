#include "common/bytes.h"

#include <openssl/crypto.h>

namespace hsmb {

void secure_wipe(void* data, std::size_t size) noexcept {
  if (data != nullptr && size != 0) OPENSSL_cleanse(data, size);
}

}  // namespace hsmb
