#include "hsm_backends/capabilities.h"

#include <algorithm>
#include <array>
#include <string>

#include "hsm_backends/pkcs11/p11.h"

namespace hsmb {
namespace {

struct mechanism_of {
  capability cap;
  CK_MECHANISM_TYPE mechanism;
  std::string_view name;
};

constexpr std::array<mechanism_of, static_cast<std::size_t>(capability::count)> table{{
    {capability::aes_key_gen, CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN"},
    {capability::aes_gcm, CKM_AES_GCM, "CKM_AES_GCM"},
    {capability::ec_key_gen, CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"},
    {capability::ecdsa, CKM_ECDSA, "CKM_ECDSA"},
    {capability::edwards_key_gen, CKM_EC_EDWARDS_KEY_PAIR_GEN, "CKM_EC_EDWARDS_KEY_PAIR_GEN"},
    {capability::eddsa, CKM_EDDSA, "CKM_EDDSA"},
    {capability::rsa_key_gen, CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN"},
    {capability::rsa_pkcs, CKM_RSA_PKCS, "CKM_RSA_PKCS"},
    {capability::rsa_pss, CKM_RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS"},
    {capability::secret_key_gen, CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN"},
    {capability::hmac_sha1, CKM_SHA_1_HMAC, "CKM_SHA_1_HMAC"},
    {capability::hmac_sha224, CKM_SHA224_HMAC, "CKM_SHA224_HMAC"},
    {capability::hmac_sha256, CKM_SHA256_HMAC, "CKM_SHA256_HMAC"},
    {capability::hmac_sha384, CKM_SHA384_HMAC, "CKM_SHA384_HMAC"},
    {capability::hmac_sha512, CKM_SHA512_HMAC, "CKM_SHA512_HMAC"},
    {capability::aes_key_wrap, CKM_AES_KEY_WRAP, "CKM_AES_KEY_WRAP"},
    {capability::aes_key_wrap_pad, CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD"},
    {capability::hmac_sha3_224, CKM_SHA3_224_HMAC, "CKM_SHA3_224_HMAC"},
    {capability::hmac_sha3_256, CKM_SHA3_256_HMAC, "CKM_SHA3_256_HMAC"},
    {capability::hmac_sha3_384, CKM_SHA3_384_HMAC, "CKM_SHA3_384_HMAC"},
    {capability::hmac_sha3_512, CKM_SHA3_512_HMAC, "CKM_SHA3_512_HMAC"},
    {capability::sha3_224, CKM_SHA3_224, "CKM_SHA3_224"},
    {capability::sha3_256, CKM_SHA3_256, "CKM_SHA3_256"},
    {capability::sha3_384, CKM_SHA3_384, "CKM_SHA3_384"},
    {capability::sha3_512, CKM_SHA3_512, "CKM_SHA3_512"},
}};

constexpr std::size_t bit(capability c) { return static_cast<std::size_t>(c); }

}  // namespace

capability_set with(std::initializer_list<capability> caps) {
  capability_set s;
  for (auto c : caps) s.set(bit(c));
  return s;
}

capability_set all_capabilities() { return capability_set{}.set(); }

capability_set capabilities_of(const std::vector<std::uint64_t>& mechanisms) {
  capability_set s;
  for (auto& row : table)
    if (std::find(mechanisms.begin(), mechanisms.end(), row.mechanism) != mechanisms.end()) s.set(bit(row.cap));
  return s;
}

capability_set needed_to_hold(key_type t) {
  auto s = with({capability::secret_key_gen, capability::hmac_sha256});
  if (is_symmetric_cipher(t)) s |= with({capability::aes_key_gen, capability::aes_gcm});
  if (is_ecdsa(t)) s |= with({capability::ec_key_gen, capability::ecdsa});
  if (t == key_type::ed25519) s |= with({capability::edwards_key_gen, capability::eddsa});
  if (is_rsa(t)) s |= with({capability::rsa_key_gen, capability::rsa_pkcs, capability::rsa_pss});
  return s;
}

capability_set needed_to_copy(key_type t) {
  auto s = with({capability::aes_key_wrap});  // secret keys, and every key's HMAC companion
  if (is_asymmetric(t)) s |= with({capability::aes_key_wrap_pad});
  return s;
}

capability_set useful_for(key_type t) {
  return needed_to_hold(t) | with({capability::hmac_sha1, capability::hmac_sha224, capability::hmac_sha384,
                                   capability::hmac_sha512});
}

capability_set needed_for_hmac(hash_alg h) {
  switch (h) {
    case hash_alg::sha1: return with({capability::hmac_sha1});
    case hash_alg::sha224: return with({capability::hmac_sha224});
    case hash_alg::sha256: return with({capability::hmac_sha256});
    case hash_alg::sha384: return with({capability::hmac_sha384});
    case hash_alg::sha512: return with({capability::hmac_sha512});
    case hash_alg::sha3_224: return with({capability::hmac_sha3_224});
    case hash_alg::sha3_256: return with({capability::hmac_sha3_256});
    case hash_alg::sha3_384: return with({capability::hmac_sha3_384});
    case hash_alg::sha3_512: return with({capability::hmac_sha3_512});
    case hash_alg::none: break;
  }
  return {};
}

capability_set needed_for_sign(sign_mechanism m, hash_alg h) {
  switch (m) {
    case sign_mechanism::ecdsa: return with({capability::ecdsa});
    case sign_mechanism::eddsa: return with({capability::eddsa});
    case sign_mechanism::rsa_pkcs1v15: return with({capability::rsa_pkcs});
    case sign_mechanism::rsa_pss: {
      auto s = with({capability::rsa_pss});
      if (h == hash_alg::sha3_224) s |= with({capability::sha3_224});
      if (h == hash_alg::sha3_256) s |= with({capability::sha3_256});
      if (h == hash_alg::sha3_384) s |= with({capability::sha3_384});
      if (h == hash_alg::sha3_512) s |= with({capability::sha3_512});
      return s;
    }
  }
  return {};
}

capability_set needed_for_cipher() { return with({capability::aes_gcm}); }

std::string describe(const capability_set& caps) {
  std::string out;
  for (auto& row : table)
    if (caps.test(bit(row.cap))) out += (out.empty() ? "" : ", ") + std::string(row.name);
  return out;
}

}  // namespace hsmb
