// Self-signed X.509 certificates for asymmetric key versions, with HSM_BROKER_PKCS11_CERTS=1:
// Java's SunPKCS11 keystore shows a private key only with a certificate of the same CKA_ID. Each
// is made once per process, when first read, by one broker signature over its TBSCertificate
// (subject and issuer CN=NAME:vN, serial = version, no expiry).
#pragma once

#include <expected>

#include "common/bytes.h"
#include "pkcs11_front/cryptoki.h"
#include "pkcs11_front/objects.h"

namespace hsmb::p11 {

bool certificates_enabled();
bytes certificate_name(const object& o);    // CKA_SUBJECT and CKA_ISSUER (DER Name)
bytes certificate_serial(const object& o);  // CKA_SERIAL_NUMBER (DER INTEGER)
std::expected<bytes, CK_RV> make_certificate(const object& o);

}  // namespace hsmb::p11
