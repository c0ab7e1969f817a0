// Mechanism parameters for sign and hmac: DigestInfo prefixes, PSS parameters, HMAC mechanisms.
#pragma once

#include <optional>

#include "common/bytes.h"
#include "hsm_backends/key_types.h"
#include "hsm_backends/pkcs11/p11.h"

namespace hsmb::pkcs11 {

// DER prefix of DigestInfo{AlgorithmIdentifier(hash), OCTET STRING digest}; empty for none.
byte_view digest_info_prefix(hash_alg hash);
// PSS with MGF1 of the same hash and salt = digest length; nullopt for none.
std::optional<CK_RSA_PKCS_PSS_PARAMS> pss_params(hash_alg hash);
// CKM_SHA*_HMAC; nullopt for none.
std::optional<CK_MECHANISM_TYPE> hmac_mechanism(hash_alg hash);

}  // namespace hsmb::pkcs11
