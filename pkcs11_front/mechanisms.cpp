#include "pkcs11_front/mechanisms.h"

#include <openssl/evp.h>

#include <algorithm>

namespace hsmb::p11 {
namespace {

constexpr CK_FLAGS sign = CKF_HW | CKF_SIGN | CKF_VERIFY;
constexpr CK_FLAGS ec = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

// clang-format off
constexpr mechanism_desc table[] = {
  {CKM_ECDSA,               op_kind::ecdsa,    hash::none,   sign | ec, 256, 384},
  {CKM_ECDSA_SHA256,        op_kind::ecdsa,    hash::sha256, sign | ec, 256, 384},
  {CKM_ECDSA_SHA384,        op_kind::ecdsa,    hash::sha384, sign | ec, 256, 384},
  {CKM_ECDSA_SHA512,        op_kind::ecdsa,    hash::sha512, sign | ec, 256, 384},
  {CKM_RSA_PKCS,            op_kind::rsa_pkcs, hash::none,   sign, 2048, 4096},
  {CKM_SHA256_RSA_PKCS,     op_kind::rsa_pkcs, hash::sha256, sign, 2048, 4096},
  {CKM_SHA384_RSA_PKCS,     op_kind::rsa_pkcs, hash::sha384, sign, 2048, 4096},
  {CKM_SHA512_RSA_PKCS,     op_kind::rsa_pkcs, hash::sha512, sign, 2048, 4096},
  {CKM_RSA_PKCS_PSS,        op_kind::rsa_pss,  hash::none,   sign, 2048, 4096},
  {CKM_SHA256_RSA_PKCS_PSS, op_kind::rsa_pss,  hash::sha256, sign, 2048, 4096},
  {CKM_SHA384_RSA_PKCS_PSS, op_kind::rsa_pss,  hash::sha384, sign, 2048, 4096},
  {CKM_SHA512_RSA_PKCS_PSS, op_kind::rsa_pss,  hash::sha512, sign, 2048, 4096},
  {CKM_EDDSA,               op_kind::eddsa,    hash::none,   sign, 255, 255},
  {CKM_SHA256_HMAC,         op_kind::hmac,     hash::sha256, sign, 16, 64},
  {CKM_SHA384_HMAC,         op_kind::hmac,     hash::sha384, sign, 16, 64},
  {CKM_SHA512_HMAC,         op_kind::hmac,     hash::sha512, sign, 16, 64},
  {CKM_AES_GCM,             op_kind::aes_gcm,  hash::none,   CKF_HW | CKF_ENCRYPT | CKF_DECRYPT, 16, 32},
  {CKM_EC_KEY_PAIR_GEN,     op_kind::keygen,   hash::none,   CKF_HW | CKF_GENERATE_KEY_PAIR | ec, 256, 384},
  {CKM_RSA_PKCS_KEY_PAIR_GEN, op_kind::keygen, hash::none,   CKF_HW | CKF_GENERATE_KEY_PAIR, 2048, 4096},
  {CKM_EC_EDWARDS_KEY_PAIR_GEN, op_kind::keygen, hash::none, CKF_HW | CKF_GENERATE_KEY_PAIR, 255, 255},
  {CKM_AES_KEY_GEN,         op_kind::keygen,   hash::none,   CKF_HW | CKF_GENERATE, 16, 32},
  {CKM_GENERIC_SECRET_KEY_GEN, op_kind::keygen, hash::none,  CKF_HW | CKF_GENERATE, 64, 64},
};
// clang-format on

}  // namespace

std::span<const mechanism_desc> all_mechanisms() { return table; }

const mechanism_desc* find_mechanism(CK_MECHANISM_TYPE t) {
  auto it = std::find_if(std::begin(table), std::end(table), [&](auto& m) { return m.type == t; });
  return it == std::end(table) ? nullptr : it;
}

bool takes_key(const mechanism_desc& m, key_family f) {
  switch (m.kind) {
    case op_kind::ecdsa: return f == key_family::ec;
    case op_kind::rsa_pkcs:
    case op_kind::rsa_pss: return f == key_family::rsa;
    case op_kind::eddsa: return f == key_family::ed25519;
    case op_kind::hmac: return f == key_family::hmac || f == key_family::aes;  // Vault: HMAC with any key
    case op_kind::aes_gcm: return f == key_family::aes;
    case op_kind::keygen: return false;
  }
  return false;
}

std::string_view vault_name(hash h) {
  switch (h) {
    case hash::sha1: return "sha1";
    case hash::sha224: return "sha2-224";
    case hash::sha256: return "sha2-256";
    case hash::sha384: return "sha2-384";
    case hash::sha512: return "sha2-512";
    case hash::none: break;
  }
  return "none";
}

std::size_t digest_size(hash h) {
  switch (h) {
    case hash::sha1: return 20;
    case hash::sha224: return 28;
    case hash::sha256: return 32;
    case hash::sha384: return 48;
    case hash::sha512: return 64;
    case hash::none: break;
  }
  return 0;
}

const EVP_MD* evp_md(hash h) {
  switch (h) {
    case hash::sha1: return EVP_sha1();
    case hash::sha224: return EVP_sha224();
    case hash::sha256: return EVP_sha256();
    case hash::sha384: return EVP_sha384();
    case hash::sha512: return EVP_sha512();
    case hash::none: break;
  }
  return nullptr;
}

std::optional<hash> hash_of_ckm(CK_MECHANISM_TYPE t) {
  switch (t) {
    case CKM_SHA_1: return hash::sha1;
    case CKM_SHA224: return hash::sha224;
    case CKM_SHA256: return hash::sha256;
    case CKM_SHA384: return hash::sha384;
    case CKM_SHA512: return hash::sha512;
    default: return std::nullopt;
  }
}

CK_RSA_PKCS_MGF_TYPE mgf_of(hash h) {
  switch (h) {
    case hash::sha1: return CKG_MGF1_SHA1;
    case hash::sha224: return CKG_MGF1_SHA224;
    case hash::sha256: return CKG_MGF1_SHA256;
    case hash::sha384: return CKG_MGF1_SHA384;
    case hash::sha512: return CKG_MGF1_SHA512;
    case hash::none: break;
  }
  return 0;
}

std::optional<hash> hash_by_size(std::size_t n) {
  for (hash h : {hash::sha1, hash::sha224, hash::sha256, hash::sha384, hash::sha512})
    if (digest_size(h) == n) return h;
  return std::nullopt;
}

}  // namespace hsmb::p11
