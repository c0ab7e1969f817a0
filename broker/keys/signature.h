// Broker-side signature helpers: digests, ECDSA encodings (DER for asn1, r||s for jws) and
// verification against a cached public key.
#pragma once

#include <optional>

#include "broker/keys/public_key.h"
#include "common/bytes.h"
#include "hsm_backends/key_types.h"

namespace hsmb {

std::optional<bytes> compute_digest(hash_alg hash, byte_view input);
std::optional<bytes> ecdsa_raw_to_der(byte_view raw);
std::optional<bytes> ecdsa_der_to_raw(byte_view der, std::size_t field_bytes);
std::size_t ecdsa_field_bytes(key_type type);  // 32 for P-256, 48 for P-384

// `data` is the digest (ECDSA, RSA) or the message (Ed25519); ECDSA signatures are DER. `salt`:
// RSA-PSS's salt length, pss_salt_auto or pss_salt_hash_length.
bool verify_signature(const public_key& key, key_type type, hash_alg hash, sign_mechanism mech, byte_view data,
                      byte_view signature, std::uint32_t salt = pss_salt_auto);

}  // namespace hsmb
