// OpenSSL's SHA256_* calls are deprecated in 3.0 but kept; measured here (bench/RESULTS.md,
// audit): an HMAC from copied SHA256_CTX pad states costs 280 ns against 450 ns through EVP,
// whose EVP_MD_CTX_copy_ex frees, allocates and cleanses the state on every copy.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "api/audit/sha256.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "common/base64.h"

namespace hsmb::api::audit {
namespace {

// Wipes a state that held key material or a secret's digest when it goes out of scope.
struct wiped_ctx {
  SHA256_CTX ctx;
  ~wiped_ctx() { OPENSSL_cleanse(&ctx, sizeof ctx); }
};

}  // namespace

void sha256_hex(char (&out)[64], std::string_view a, std::string_view b) {
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, a.data(), a.size());
  SHA256_Update(&ctx, b.data(), b.size());
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256_Final(d, &ctx);
  hex_encode_to(out, byte_view(d, sizeof d));
}

std::string sha256_hex(std::string_view a, std::string_view b) {
  char hex[64];
  sha256_hex(hex, a, b);
  return std::string(hex, sizeof hex);
}

// The inner and outer hash states after the key's ipad and opad blocks (RFC 2104).
struct hmac_sha256::states {
  SHA256_CTX inner, outer;
  ~states() { OPENSSL_cleanse(this, sizeof *this); }
};

hmac_sha256::hmac_sha256(byte_view key) : s_(std::make_unique<states>()) {
  constexpr std::size_t block = 64;
  unsigned char k[block] = {};
  if (key.size() > block) SHA256(key.data(), key.size(), k);
  else std::copy(key.begin(), key.end(), k);
  unsigned char ipad[block], opad[block];
  for (std::size_t i = 0; i < block; ++i) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  SHA256_Init(&s_->inner);
  SHA256_Update(&s_->inner, ipad, block);
  SHA256_Init(&s_->outer);
  SHA256_Update(&s_->outer, opad, block);
  secure_wipe(k, block);
  secure_wipe(ipad, block);
  secure_wipe(opad, block);
}

hmac_sha256::~hmac_sha256() = default;  // ~states cleanses the pad states

std::string hmac_sha256::hex(std::string_view data) const {
  std::string out;
  append_hex(out, data);
  return out;
}

void hmac_sha256::append_hex(std::string& out, std::string_view data) const {
  unsigned char inner[SHA256_DIGEST_LENGTH], mac[SHA256_DIGEST_LENGTH];
  {
    wiped_ctx w{s_->inner};
    SHA256_Update(&w.ctx, data.data(), data.size());
    SHA256_Final(inner, &w.ctx);
  }
  wiped_ctx w{s_->outer};
  SHA256_Update(&w.ctx, inner, sizeof inner);
  SHA256_Final(mac, &w.ctx);
  secure_wipe(inner, sizeof inner);
  auto at = out.size();
  out.resize(at + 2 * sizeof mac);
  hex_encode_to(out.data() + at, byte_view(mac, sizeof mac));
}

}  // namespace hsmb::api::audit
