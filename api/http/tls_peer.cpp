#include "api/http/tls_peer.h"

#include <memory>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace hsmb::api {
namespace {

struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
struct names_free {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
using bio_ptr = std::unique_ptr<BIO, bio_free>;

std::string rfc2253(const X509_NAME* name) {
  bio_ptr out(BIO_new(BIO_s_mem()));
  if (!out || X509_NAME_print_ex(out.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  char* data = nullptr;
  long n = BIO_get_mem_data(out.get(), &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

std::string text_of(const ASN1_STRING* s) {
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::string common_name(const X509_NAME* name) {
  int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at < 0) return {};
  return text_of(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at)));
}

std::vector<std::string> uri_sans(const X509& cert) {
  std::vector<std::string> out;
  std::unique_ptr<GENERAL_NAMES, names_free> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(&cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0, n = sk_GENERAL_NAME_num(names.get()); i < n; ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names.get(), i);
    if (g->type == GEN_URI) out.push_back(text_of(g->d.uniformResourceIdentifier));
  }
  return out;
}

}  // namespace

tls_peer tls_peer_of(const x509_st& cert) {
  const X509_NAME* subject = X509_get_subject_name(&cert);
  return {.subject = rfc2253(subject), .subject_cn = common_name(subject), .uri_sans = uri_sans(cert)};
}

std::optional<tls_peer> tls_peer_from_pem(std::string_view pem) {
  bio_ptr in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::unique_ptr<X509, x509_free> cert(in ? PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return std::nullopt;
  return tls_peer_of(*cert);
}

}  // namespace hsmb::api
