// Mechanism parameters for sign and hmac.
#include "hsm_backends/pkcs11/mechanisms.h"

#include <array>

namespace hsmb::pkcs11 {
namespace {

constexpr std::array<std::uint8_t, 15> di_sha1{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                               0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
// SHA-2 DigestInfo prefixes differ only in the OID's last byte and the lengths.
constexpr std::array<std::uint8_t, 19> di_sha2(std::uint8_t total, std::uint8_t oid_last, std::uint8_t digest) {
  return {0x30, total, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
          0x65, 0x03,  0x04, 0x02, oid_last, 0x05, 0x00, 0x04, digest};
}
constexpr auto di_sha224 = di_sha2(0x2d, 0x04, 28);
constexpr auto di_sha256 = di_sha2(0x31, 0x01, 32);
constexpr auto di_sha384 = di_sha2(0x41, 0x02, 48);
constexpr auto di_sha512 = di_sha2(0x51, 0x03, 64);
// SHA-3 (NIST OIDs 2.16.840.1.101.3.4.2.7 to .10) has the same layout.
constexpr auto di_sha3_224 = di_sha2(0x2d, 0x07, 28);
constexpr auto di_sha3_256 = di_sha2(0x31, 0x08, 32);
constexpr auto di_sha3_384 = di_sha2(0x41, 0x09, 48);
constexpr auto di_sha3_512 = di_sha2(0x51, 0x0a, 64);

}  // namespace

byte_view digest_info_prefix(hash_alg hash) {
  switch (hash) {
    case hash_alg::sha1: return di_sha1;
    case hash_alg::sha224: return di_sha224;
    case hash_alg::sha256: return di_sha256;
    case hash_alg::sha384: return di_sha384;
    case hash_alg::sha512: return di_sha512;
    case hash_alg::sha3_224: return di_sha3_224;
    case hash_alg::sha3_256: return di_sha3_256;
    case hash_alg::sha3_384: return di_sha3_384;
    case hash_alg::sha3_512: return di_sha3_512;
    case hash_alg::none: break;
  }
  return {};
}

std::optional<CK_RSA_PKCS_PSS_PARAMS> pss_params(hash_alg hash, std::uint32_t salt) {
  CK_ULONG s_len = salt == pss_salt_hash_length ? digest_size(hash) : salt;
  auto p = [&](CK_MECHANISM_TYPE h, CK_RSA_PKCS_MGF_TYPE mgf) { return CK_RSA_PKCS_PSS_PARAMS{h, mgf, s_len}; };
  switch (hash) {
    case hash_alg::sha1: return p(CKM_SHA_1, CKG_MGF1_SHA1);
    case hash_alg::sha224: return p(CKM_SHA224, CKG_MGF1_SHA224);
    case hash_alg::sha256: return p(CKM_SHA256, CKG_MGF1_SHA256);
    case hash_alg::sha384: return p(CKM_SHA384, CKG_MGF1_SHA384);
    case hash_alg::sha512: return p(CKM_SHA512, CKG_MGF1_SHA512);
    case hash_alg::sha3_224: return p(CKM_SHA3_224, CKG_MGF1_SHA3_224);
    case hash_alg::sha3_256: return p(CKM_SHA3_256, CKG_MGF1_SHA3_256);
    case hash_alg::sha3_384: return p(CKM_SHA3_384, CKG_MGF1_SHA3_384);
    case hash_alg::sha3_512: return p(CKM_SHA3_512, CKG_MGF1_SHA3_512);
    case hash_alg::none: break;
  }
  return std::nullopt;
}

std::optional<CK_MECHANISM_TYPE> hmac_mechanism(hash_alg hash) {
  switch (hash) {
    case hash_alg::sha1: return CKM_SHA_1_HMAC;
    case hash_alg::sha224: return CKM_SHA224_HMAC;
    case hash_alg::sha256: return CKM_SHA256_HMAC;
    case hash_alg::sha384: return CKM_SHA384_HMAC;
    case hash_alg::sha512: return CKM_SHA512_HMAC;
    case hash_alg::sha3_224: return CKM_SHA3_224_HMAC;
    case hash_alg::sha3_256: return CKM_SHA3_256_HMAC;
    case hash_alg::sha3_384: return CKM_SHA3_384_HMAC;
    case hash_alg::sha3_512: return CKM_SHA3_512_HMAC;
    case hash_alg::none: break;
  }
  return std::nullopt;
}

}  // namespace hsmb::pkcs11
