#include "broker/keys/signature.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <memory>

namespace hsmb {
namespace {

const EVP_MD* message_digest(hash_alg h) {
  switch (h) {
    case hash_alg::sha1: return EVP_sha1();
    case hash_alg::sha224: return EVP_sha224();
    case hash_alg::sha256: return EVP_sha256();
    case hash_alg::sha384: return EVP_sha384();
    case hash_alg::sha512: return EVP_sha512();
    case hash_alg::sha3_224: return EVP_sha3_224();
    case hash_alg::sha3_256: return EVP_sha3_256();
    case hash_alg::sha3_384: return EVP_sha3_384();
    case hash_alg::sha3_512: return EVP_sha3_512();
    case hash_alg::none: return nullptr;
  }
  return nullptr;
}

struct sig_free { void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); } };
struct ctx_free { void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); } };
struct mdctx_free { void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); } };

int salt_length(std::uint32_t salt) {
  if (salt == pss_salt_auto) return RSA_PSS_SALTLEN_AUTO;
  if (salt == pss_salt_hash_length) return RSA_PSS_SALTLEN_DIGEST;
  return static_cast<int>(salt);
}

bool verify_ed25519(EVP_PKEY* key, byte_view message, byte_view signature) {
  std::unique_ptr<EVP_MD_CTX, mdctx_free> ctx(EVP_MD_CTX_new());
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(), message.size()) == 1;
}

bool verify_digest(EVP_PKEY* key, hash_alg hash, sign_mechanism mech, byte_view digest, byte_view signature,
                   std::uint32_t salt) {
  std::unique_ptr<EVP_PKEY_CTX, ctx_free> ctx(EVP_PKEY_CTX_new(key, nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1) return false;
  const EVP_MD* md = message_digest(hash);
  if (mech == sign_mechanism::rsa_pss) {
    if (!md || EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), salt_length(salt)) != 1)
      return false;
  } else if (mech == sign_mechanism::rsa_pkcs1v15) {
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) return false;
  }
  if (md && EVP_PKEY_CTX_set_signature_md(ctx.get(), md) != 1) return false;
  return EVP_PKEY_verify(ctx.get(), signature.data(), signature.size(), digest.data(), digest.size()) == 1;
}

}  // namespace

std::optional<bytes> compute_digest(hash_alg hash, byte_view input) {
  const EVP_MD* md = message_digest(hash);
  if (!md) return std::nullopt;
  bytes out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int n = 0;
  if (EVP_Digest(input.data(), input.size(), out.data(), &n, md, nullptr) != 1) return std::nullopt;
  out.resize(n);
  return out;
}

std::size_t ecdsa_field_bytes(key_type type) { return type == key_type::ecdsa_p384 ? 48 : 32; }

std::optional<bytes> ecdsa_raw_to_der(byte_view raw) {
  if (raw.empty() || raw.size() % 2 != 0) return std::nullopt;
  std::size_t half = raw.size() / 2;
  std::unique_ptr<ECDSA_SIG, sig_free> sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(raw.data(), static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(raw.data() + half, static_cast<int>(half), nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  int n = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (n <= 0) return std::nullopt;
  bytes out(static_cast<std::size_t>(n));
  auto* p = out.data();
  i2d_ECDSA_SIG(sig.get(), &p);
  return out;
}

std::optional<bytes> ecdsa_der_to_raw(byte_view der, std::size_t field_bytes) {
  const unsigned char* p = der.data();
  std::unique_ptr<ECDSA_SIG, sig_free> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != der.data() + der.size()) return std::nullopt;
  bytes out(field_bytes * 2);
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  if (BN_bn2binpad(r, out.data(), static_cast<int>(field_bytes)) < 0 ||
      BN_bn2binpad(s, out.data() + field_bytes, static_cast<int>(field_bytes)) < 0)
    return std::nullopt;
  return out;
}

bool verify_signature(const public_key& key, key_type type, hash_alg hash, sign_mechanism mech, byte_view data,
                      byte_view signature, std::uint32_t salt) {
  if (type == key_type::ed25519) return verify_ed25519(key.pkey.get(), data, signature);
  return verify_digest(key.pkey.get(), hash, mech, data, signature, salt);
}

}  // namespace hsmb
