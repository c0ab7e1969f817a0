// C_Sign* and C_Verify*: a mechanism and key checked at init, data hashed or buffered, the
// signature made by the broker (Transit sign or hmac, for the object's key version) in PKCS#11's
// encoding, and verified locally on the public key (HMAC: by the broker's answer).
#pragma once

#include <expected>

#include "common/bytes.h"
#include "pkcs11_front/cryptoki.h"
#include "pkcs11_front/session.h"

namespace hsmb::p11 {

CK_RV sign_init(std::optional<sign_state>& out, const CK_MECHANISM* mech, const object& key, bool verify);
CK_RV sign_update(sign_state& s, byte_view data);
std::size_t signature_length(const sign_state& s);
std::expected<bytes, CK_RV> sign_final(sign_state& s);
CK_RV verify_final(sign_state& s, byte_view signature);

// "vault:v3:BASE64" → the bytes (base64url for JWS-marshalled ECDSA).
std::optional<secure_bytes> versioned_value(std::string_view text, bool url);

}  // namespace hsmb::p11
