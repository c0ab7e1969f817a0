// Key types the broker offers (Vault Transit names) and what each one can do.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace hsmb {

enum class key_type : std::uint8_t {
  aes128_gcm96 = 1,
  aes256_gcm96 = 2,
  ecdsa_p256 = 3,
  ecdsa_p384 = 4,
  ed25519 = 5,
  rsa_2048 = 6,
  rsa_3072 = 7,
  rsa_4096 = 8,
  hmac = 9,
};

// Hash used by sign/hmac. `none` means the input is already what the mechanism consumes.
enum class hash_alg : std::uint8_t {
  none = 0, sha1 = 1, sha224 = 2, sha256 = 3, sha384 = 4, sha512 = 5,
  sha3_224 = 6, sha3_256 = 7, sha3_384 = 8, sha3_512 = 9,
};
inline constexpr hash_alg last_hash_alg = hash_alg::sha3_512;

// How the worker signs. Digests are computed by the broker (so `prehashed` is free);
// Ed25519 signs the whole message.
enum class sign_mechanism : std::uint8_t {
  ecdsa = 1,         // CKM_ECDSA over a digest; signature is r||s
  eddsa = 2,         // CKM_EDDSA over the message; 64-byte signature
  rsa_pkcs1v15 = 3,  // CKM_RSA_PKCS over DigestInfo(hash, digest) built by the worker
  rsa_pss = 4,       // CKM_RSA_PKCS_PSS over a digest, MGF1 with the same hash, salt as asked
};
// A PSS salt length meaning "the digest's length" (Vault's salt_length=hash).
inline constexpr std::uint32_t pss_salt_hash_length = 0xffffffffu;
// Vault's salt_length=auto: the largest salt when signing, whatever the signature carries when verifying.
inline constexpr std::uint32_t pss_salt_auto = 0xfffffffeu;

std::string_view to_string(key_type t);
std::optional<key_type> parse_key_type(std::string_view name);
std::string_view to_string(hash_alg h);
std::optional<hash_alg> parse_hash_alg(std::string_view vault_name);  // "sha2-256", ...
std::size_t digest_size(hash_alg h);
bool is_sha3(hash_alg h);
// The largest PSS salt an RSA key of `t` takes with `h` (RFC 8017 9.1.1: emLen - hLen - 2).
std::size_t max_pss_salt(key_type t, hash_alg h);
std::size_t rsa_modulus_bytes(key_type t);  // 256, 384, 512; 0 for other types

bool is_symmetric_cipher(key_type t);  // aes*-gcm96
bool is_asymmetric(key_type t);        // ecdsa, ed25519, rsa
bool is_rsa(key_type t);
bool is_ecdsa(key_type t);

}  // namespace hsmb
