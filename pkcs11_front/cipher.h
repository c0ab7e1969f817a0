// C_Encrypt* and C_Decrypt* with CKM_AES_GCM through Transit encrypt/decrypt. The broker chooses
// every nonce (Vault's format has no caller IV): C_EncryptInit takes a 12-byte IV buffer that must
// be zero and receives the nonce at C_Encrypt/C_EncryptFinal, as AWS CloudHSM's module does; any
// other IV, or a tag other than 128 bits, is CKR_MECHANISM_PARAM_INVALID. Decryption honours the
// caller's IV, AAD and tag: ciphertext‖tag is C_Decrypt's input, as the spec has it.
#pragma once

#include <expected>

#include "common/bytes.h"
#include "pkcs11_front/cryptoki.h"
#include "pkcs11_front/session.h"

namespace hsmb::p11 {

CK_RV cipher_init(std::optional<cipher_state>& out, const CK_MECHANISM* mech, const object& key, bool encrypt);
CK_RV cipher_update(cipher_state& s, byte_view data);
std::size_t cipher_output_length(const cipher_state& s);  // the whole output, known before the call
std::expected<secure_bytes, CK_RV> cipher_final(cipher_state& s);

}  // namespace hsmb::p11
