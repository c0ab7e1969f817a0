#include "hsm_backends/key_types.h"

#include <array>
#include <utility>

namespace hsmb {
namespace {

constexpr std::array<std::pair<key_type, std::string_view>, 9> key_type_names{{
    {key_type::aes128_gcm96, "aes128-gcm96"},
    {key_type::aes256_gcm96, "aes256-gcm96"},
    {key_type::ecdsa_p256, "ecdsa-p256"},
    {key_type::ecdsa_p384, "ecdsa-p384"},
    {key_type::ed25519, "ed25519"},
    {key_type::rsa_2048, "rsa-2048"},
    {key_type::rsa_3072, "rsa-3072"},
    {key_type::rsa_4096, "rsa-4096"},
    {key_type::hmac, "hmac"},
}};

constexpr std::array<std::pair<hash_alg, std::string_view>, 10> hash_names{{
    {hash_alg::none, "none"},
    {hash_alg::sha1, "sha1"},
    {hash_alg::sha224, "sha2-224"},
    {hash_alg::sha256, "sha2-256"},
    {hash_alg::sha384, "sha2-384"},
    {hash_alg::sha512, "sha2-512"},
    {hash_alg::sha3_224, "sha3-224"},
    {hash_alg::sha3_256, "sha3-256"},
    {hash_alg::sha3_384, "sha3-384"},
    {hash_alg::sha3_512, "sha3-512"},
}};

}  // namespace

std::string_view to_string(key_type t) {
  for (auto& [k, n] : key_type_names)
    if (k == t) return n;
  return "unknown";
}

std::optional<key_type> parse_key_type(std::string_view name) {
  for (auto& [k, n] : key_type_names)
    if (n == name) return k;
  return std::nullopt;
}

std::string_view to_string(hash_alg h) {
  for (auto& [k, n] : hash_names)
    if (k == h) return n;
  return "unknown";
}

std::optional<hash_alg> parse_hash_alg(std::string_view name) {
  for (auto& [k, n] : hash_names)
    if (n == name) return k;
  return std::nullopt;
}

std::size_t digest_size(hash_alg h) {
  switch (h) {
    case hash_alg::sha1: return 20;
    case hash_alg::sha224: return 28;
    case hash_alg::sha256: return 32;
    case hash_alg::sha384: return 48;
    case hash_alg::sha512: return 64;
    case hash_alg::sha3_224: return 28;
    case hash_alg::sha3_256: return 32;
    case hash_alg::sha3_384: return 48;
    case hash_alg::sha3_512: return 64;
    case hash_alg::none: return 0;
  }
  return 0;
}

bool is_sha3(hash_alg h) { return h >= hash_alg::sha3_224 && h <= hash_alg::sha3_512; }

std::size_t rsa_modulus_bytes(key_type t) {
  switch (t) {
    case key_type::rsa_2048: return 256;
    case key_type::rsa_3072: return 384;
    case key_type::rsa_4096: return 512;
    default: return 0;
  }
}

// emLen = ceil((modBits - 1) / 8), which for these whole-byte moduli is the modulus length.
std::size_t max_pss_salt(key_type t, hash_alg h) {
  auto em = rsa_modulus_bytes(t), hl = digest_size(h);
  return em >= hl + 2 ? em - hl - 2 : 0;
}

bool is_symmetric_cipher(key_type t) { return t == key_type::aes128_gcm96 || t == key_type::aes256_gcm96; }
bool is_rsa(key_type t) { return t == key_type::rsa_2048 || t == key_type::rsa_3072 || t == key_type::rsa_4096; }
bool is_ecdsa(key_type t) { return t == key_type::ecdsa_p256 || t == key_type::ecdsa_p384; }
bool is_asymmetric(key_type t) { return is_rsa(t) || is_ecdsa(t) || t == key_type::ed25519; }

}  // namespace hsmb
