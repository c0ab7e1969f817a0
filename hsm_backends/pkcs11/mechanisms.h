// Mechanism parameters for sign and hmac: DigestInfo prefixes, PSS parameters, HMAC mechanisms.
#pragma once

#include <optional>

#include "common/bytes.h"
#include "hsm_backends/key_types.h"
#include "hsm_backends/pkcs11/p11.h"

namespace hsmb::pkcs11 {

// DER prefix of DigestInfo{AlgorithmIdentifier(hash), OCTET STRING digest}; empty for none.
byte_view digest_info_prefix(hash_alg hash);
// PSS with MGF1 of the same hash and a salt of `salt` bytes (pss_salt_hash_length: the digest's
// length); nullopt for none.
std::optional<CK_RSA_PKCS_PSS_PARAMS> pss_params(hash_alg hash, std::uint32_t salt = pss_salt_hash_length);
// CKM_SHA*_HMAC; nullopt for none.
std::optional<CK_MECHANISM_TYPE> hmac_mechanism(hash_alg hash);

}  // namespace hsmb::pkcs11
