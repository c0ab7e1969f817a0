#include "broker/keys/public_key.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

namespace hsmb {
namespace {

struct bld_free { void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); } };
struct params_free { void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); } };
struct ctx_free { void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); } };
struct bn_free { void operator()(BIGNUM* b) const { BN_free(b); } };
struct bio_free { void operator()(BIO* b) const { BIO_free(b); } };

std::shared_ptr<EVP_PKEY> from_params(const char* algorithm, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, params_free> params(OSSL_PARAM_BLD_to_param(bld));
  std::unique_ptr<EVP_PKEY_CTX, ctx_free> ctx(EVP_PKEY_CTX_new_from_name(nullptr, algorithm, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0)
    return nullptr;
  return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

std::shared_ptr<EVP_PKEY> ec_key(const char* group, byte_view point) {
  std::unique_ptr<OSSL_PARAM_BLD, bld_free> bld(OSSL_PARAM_BLD_new());
  OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
  OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  return from_params("EC", bld.get());
}

std::shared_ptr<EVP_PKEY> rsa_key(byte_view modulus, byte_view exponent) {
  std::unique_ptr<BIGNUM, bn_free> n(BN_bin2bn(modulus.data(), static_cast<int>(modulus.size()), nullptr));
  std::unique_ptr<BIGNUM, bn_free> e(BN_bin2bn(exponent.data(), static_cast<int>(exponent.size()), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, bld_free> bld(OSSL_PARAM_BLD_new());
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get());
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get());
  return from_params("RSA", bld.get());
}

std::string to_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, bio_free> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return {};
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

std::optional<public_key> make_public_key(const public_key_blob& blob, key_type type) {
  public_key pk;
  switch (type) {
    case key_type::ecdsa_p256:
      pk.pkey = blob.k == public_key_blob::kind::ec ? ec_key("prime256v1", blob.b) : nullptr;
      pk.name = "P-256";
      break;
    case key_type::ecdsa_p384:
      pk.pkey = blob.k == public_key_blob::kind::ec ? ec_key("secp384r1", blob.b) : nullptr;
      pk.name = "P-384";
      break;
    case key_type::ed25519:
      if (blob.k == public_key_blob::kind::eddsa)
        pk.pkey = std::shared_ptr<EVP_PKEY>(
            EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, blob.b.data(), blob.b.size()), EVP_PKEY_free);
      pk.name = "ed25519";
      break;
    case key_type::rsa_2048:
    case key_type::rsa_3072:
    case key_type::rsa_4096:
      pk.pkey = blob.k == public_key_blob::kind::rsa ? rsa_key(blob.a, blob.b) : nullptr;
      pk.name = std::string(to_string(type));
      break;
    default:
      return std::nullopt;
  }
  if (!pk.pkey) return std::nullopt;
  pk.pem = to_pem(pk.pkey.get());
  if (pk.pem.empty()) return std::nullopt;
  return pk;
}

bytes public_key_fingerprint(const public_key& key) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key.pkey.get(), &der);
  if (n <= 0) return {};
  bytes digest(32);
  unsigned int len = 0;
  EVP_Digest(der, static_cast<std::size_t>(n), digest.data(), &len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  return digest;
}

}  // namespace hsmb
