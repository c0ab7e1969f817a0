#include "api/audit/sha256.h"

#include <openssl/evp.h>

#include "common/base64.h"

namespace hsmb::api::audit {
namespace {

const EVP_MD* sha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // kept for the process's life
  return md;
}

using md_ctx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
md_ctx new_ctx() { return md_ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free); }

std::string finish_hex(EVP_MD_CTX* ctx) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, d, &n);
  return hex_encode(byte_view(d, n));
}

}  // namespace

std::string sha256_hex(std::string_view a, std::string_view b) {
  thread_local md_ctx ctx = new_ctx();
  EVP_DigestInit_ex(ctx.get(), sha256(), nullptr);
  EVP_DigestUpdate(ctx.get(), a.data(), a.size());
  EVP_DigestUpdate(ctx.get(), b.data(), b.size());
  return finish_hex(ctx.get());
}

// The inner and outer hash states after the key's ipad and opad blocks (RFC 2104).
struct hmac_sha256::states {
  md_ctx inner = new_ctx(), outer = new_ctx(), work = new_ctx();
};

hmac_sha256::hmac_sha256(byte_view key) : s_(std::make_unique<states>()) {
  constexpr std::size_t block = 64;
  unsigned char k[block] = {};
  if (key.size() > block) {
    unsigned int n = 0;
    EVP_Digest(key.data(), key.size(), k, &n, sha256(), nullptr);
  } else {
    std::copy(key.begin(), key.end(), k);
  }
  unsigned char ipad[block], opad[block];
  for (std::size_t i = 0; i < block; ++i) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  EVP_DigestInit_ex(s_->inner.get(), sha256(), nullptr);
  EVP_DigestUpdate(s_->inner.get(), ipad, block);
  EVP_DigestInit_ex(s_->outer.get(), sha256(), nullptr);
  EVP_DigestUpdate(s_->outer.get(), opad, block);
  secure_wipe(k, block);
  secure_wipe(ipad, block);
  secure_wipe(opad, block);
}

hmac_sha256::~hmac_sha256() = default;  // EVP_MD_CTX_free cleanses the states

std::string hmac_sha256::hex(std::string_view data) const {
  std::string out;
  append_hex(out, data);
  return out;
}

void hmac_sha256::append_hex(std::string& out, std::string_view data) const {
  static constexpr char digits[] = "0123456789abcdef";
  unsigned char inner[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_MD_CTX_copy_ex(s_->work.get(), s_->inner.get());
  EVP_DigestUpdate(s_->work.get(), data.data(), data.size());
  EVP_DigestFinal_ex(s_->work.get(), inner, &n);
  EVP_MD_CTX_copy_ex(s_->work.get(), s_->outer.get());
  EVP_DigestUpdate(s_->work.get(), inner, n);
  EVP_DigestFinal_ex(s_->work.get(), mac, &n);
  for (unsigned i = 0; i < n; ++i) {
    out += digits[mac[i] >> 4];
    out += digits[mac[i] & 15];
  }
}

}  // namespace hsmb::api::audit
