// Certificates for HSM keys (Vault 1.15's keys/:name/csr and set-certificate): a certificate
// signing request whose signature the HSM makes, and a CA's chain checked against the key.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <openssl/types.h>

#include "broker/error.h"
#include "broker/keys/key_operations.h"
#include "broker/keys/public_key.h"

struct X509_req_st;  // OpenSSL's X509_REQ, declared here so x509.h stays out of the header

namespace hsmb {

// A request being built: its to-be-signed part, then the signature the HSM made over it.
class csr_builder {
 public:
  // `template_pem`: a CSR whose subject and extensions are copied (Vault's `csr`); empty: none.
  static broker_result<csr_builder> make(const public_key& key, key_type type, std::string_view template_pem);
  bytes to_be_signed() const;                            // DER of the CertificationRequestInfo
  sign_options signing() const;                          // how the HSM signs it (X.509's algorithms)
  broker_result<std::string> finish(byte_view signature);  // PEM, checked against the public key

 private:
  struct req_free {
    void operator()(::X509_req_st* r) const;
  };
  std::unique_ptr<::X509_req_st, req_free> req_;
  public_key key_;
  key_type type_ = key_type::ecdsa_p256;
};

// A PEM chain, leaf first, whose leaf certifies `key`: returned in a normalised PEM, or a 400.
broker_result<std::string> check_certificate_chain(const public_key& key, std::string_view chain_pem);

}  // namespace hsmb
