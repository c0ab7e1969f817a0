// C_GenerateKeyPair and C_GenerateKey: a template turned into a broker key (POST
// /v1/transit/keys/:name with the Transit type), CKA_LABEL naming it. Every template attribute is
// honoured or refused: the key the broker makes must be the key the template describes.
#pragma once

#include <expected>
#include <span>
#include <utility>

#include "pkcs11_front/cryptoki.h"

namespace hsmb::p11 {

std::expected<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>, CK_RV> generate_key_pair(
    const CK_MECHANISM& mech, std::span<const CK_ATTRIBUTE> pub, std::span<const CK_ATTRIBUTE> priv);
std::expected<CK_OBJECT_HANDLE, CK_RV> generate_key(const CK_MECHANISM& mech, std::span<const CK_ATTRIBUTE> tmpl);

}  // namespace hsmb::p11
