#include "broker/keys/certificate.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

namespace hsmb {
namespace {

struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};
using bio_ptr = std::unique_ptr<BIO, bio_free>;

bio_ptr read_bio(std::string_view text) { return bio_ptr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))); }

std::string pem_of(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

// X.509's signature algorithm for the key: ECDSA with the curve's hash, RSA PKCS#1 v1.5 SHA-256, Ed25519.
int signature_nid(key_type t) {
  if (t == key_type::ecdsa_p256) return NID_ecdsa_with_SHA256;
  if (t == key_type::ecdsa_p384) return NID_ecdsa_with_SHA384;
  if (t == key_type::ed25519) return NID_ED25519;
  return NID_sha256WithRSAEncryption;
}

}  // namespace

void csr_builder::req_free::operator()(X509_REQ* r) const { X509_REQ_free(r); }

broker_result<csr_builder> csr_builder::make(const public_key& key, key_type type, std::string_view template_pem) {
  csr_builder b;
  b.key_ = key;
  b.type_ = type;
  if (!template_pem.empty()) {
    auto bio = read_bio(template_pem);
    b.req_.reset(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
    if (!b.req_) return invalid_input("csr is not a PEM certificate request");
  } else {
    b.req_.reset(X509_REQ_new());
  }
  if (!b.req_ || X509_REQ_set_version(b.req_.get(), 0) != 1 || X509_REQ_set_pubkey(b.req_.get(), key.pkey.get()) != 1)
    return internal("cannot build a certificate request");
  return b;
}

bytes csr_builder::to_be_signed() const {
  unsigned char* der = nullptr;
  int n = i2d_re_X509_REQ_tbs(req_.get(), &der);
  if (n <= 0) return {};
  bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

sign_options csr_builder::signing() const {
  sign_options s;
  s.hash = type_ == key_type::ecdsa_p384 ? hash_alg::sha384 : hash_alg::sha256;
  s.pkcs1v15 = is_rsa(type_);
  return s;
}

broker_result<std::string> csr_builder::finish(byte_view signature) {
  X509_ALGOR* alg = X509_ALGOR_new();
  ASN1_BIT_STRING* sig = ASN1_BIT_STRING_new();
  int param = is_rsa(type_) ? V_ASN1_NULL : V_ASN1_UNDEF;  // RSA's AlgorithmIdentifier carries NULL
  bool ok = alg && sig && X509_ALGOR_set0(alg, OBJ_nid2obj(signature_nid(type_)), param, nullptr) == 1 &&
            ASN1_BIT_STRING_set(sig, const_cast<unsigned char*>(signature.data()), static_cast<int>(signature.size())) == 1;
  if (ok) {
    sig->flags = (sig->flags & ~0x07L) | ASN1_STRING_FLAG_BITS_LEFT;  // a whole number of bytes: 0 unused bits
    X509_REQ_set1_signature_algo(req_.get(), alg);
    X509_REQ_set0_signature(req_.get(), sig);
    sig = nullptr;
  }
  X509_ALGOR_free(alg);
  ASN1_BIT_STRING_free(sig);
  if (!ok) return internal("cannot attach the HSM's signature to the certificate request");
  if (X509_REQ_verify(req_.get(), key_.pkey.get()) != 1) return internal("the HSM's signature over the certificate request does not verify");
  bio_ptr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_X509_REQ(out.get(), req_.get()) != 1) return internal("cannot write the certificate request");
  return pem_of(out.get());
}

broker_result<std::string> check_certificate_chain(const public_key& key, std::string_view chain_pem) {
  auto in = read_bio(chain_pem);
  bio_ptr out(BIO_new(BIO_s_mem()));
  int count = 0;
  for (;;) {
    X509* cert = PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr);
    if (!cert) {
      ERR_clear_error();  // the end of the text reads as an error
      break;
    }
    bool leaf_ok = count > 0 || EVP_PKEY_eq(X509_get0_pubkey(cert), key.pkey.get()) == 1;
    bool written = PEM_write_bio_X509(out.get(), cert) == 1;
    X509_free(cert);
    if (!leaf_ok) return invalid_input("the first certificate of certificate_chain is not for this key version's public key");
    if (!written) return internal("cannot write the certificate chain");
    ++count;
  }
  if (count == 0) return invalid_input("certificate_chain holds no PEM certificate");
  return pem_of(out.get());
}

}  // namespace hsmb
