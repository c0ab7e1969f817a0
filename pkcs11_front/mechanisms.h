// The mechanisms the module offers, and what each means in Transit terms: the operation, the hash
// (none for the raw mechanisms, whose input is already a digest), and the key families it takes.
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "common/bytes.h"
#include "pkcs11_front/cryptoki.h"
#include "pkcs11_front/key_info.h"

typedef struct evp_md_st EVP_MD;

namespace hsmb::p11 {

enum class hash { none, sha1, sha224, sha256, sha384, sha512 };
enum class op_kind { ecdsa, rsa_pkcs, rsa_pss, eddsa, hmac, aes_gcm, keygen };

struct mechanism_desc {
  CK_MECHANISM_TYPE type;
  op_kind kind;
  hash digest;           // hashed by the mechanism (none: the caller hashed, or EdDSA/GCM)
  CK_FLAGS flags;
  CK_ULONG min_key, max_key;
};

std::span<const mechanism_desc> all_mechanisms();
const mechanism_desc* find_mechanism(CK_MECHANISM_TYPE t);
bool takes_key(const mechanism_desc& m, key_family f);

std::string_view vault_name(hash h);           // "sha2-256"
std::size_t digest_size(hash h);
const EVP_MD* evp_md(hash h);
std::optional<hash> hash_of_ckm(CK_MECHANISM_TYPE t);  // CKM_SHA256 → sha256 (PSS parameters)
CK_RSA_PKCS_MGF_TYPE mgf_of(hash h);
// A raw ECDSA input's hash, by its length: 20, 28, 32, 48 or 64 bytes.
std::optional<hash> hash_by_size(std::size_t n);

}  // namespace hsmb::p11
