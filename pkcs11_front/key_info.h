// A broker key as the module sees it (GET /v1/transit/keys/:name): its type, versions, and for
// asymmetric keys each version's public key with the PKCS#11 encodings clients read.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/json/value.hpp>

#include "common/bytes.h"
#include "pkcs11_front/cryptoki.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace hsmb::p11 {

enum class key_family { ec, rsa, ed25519, aes, hmac };

struct public_key_info {
  std::shared_ptr<EVP_PKEY> pkey;
  bytes spki;         // CKA_PUBLIC_KEY_INFO (DER SubjectPublicKeyInfo)
  bytes ec_params;    // CKA_EC_PARAMS: DER OID of the curve
  bytes ec_point;     // CKA_EC_POINT: DER OCTET STRING of the point
  bytes modulus, public_exponent;
  CK_ULONG modulus_bits = 0;
};

struct key_info {
  std::string name;
  std::string type;  // the broker's: ecdsa-p256, rsa-2048, aes256-gcm96, hmac, ...
  key_family family = key_family::aes;
  std::uint32_t latest = 0, min_decryption = 1;
  bool deletion_allowed = false;
  std::map<std::uint32_t, std::shared_ptr<const public_key_info>> versions;  // null for symmetric keys
};

std::optional<key_family> family_of(std::string_view broker_type);
bool is_asymmetric(key_family f);
// The key in a GET answer's data; nullopt when it is not a key the module can present.
std::optional<key_info> parse_key_info(const boost::json::value& data);
std::optional<public_key_info> parse_public_key(std::string_view pem);

// Signature length for a key type: ECDSA r‖s, RSA modulus, Ed25519 64.
std::size_t signature_size(const key_info& k);
CK_ULONG secret_value_len(const key_info& k);

// DER OIDs of the curves the broker makes.
bytes p256_oid();
bytes p384_oid();
bytes ed25519_oid();

}  // namespace hsmb::p11
