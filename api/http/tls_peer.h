// What a request learns of a verified TLS client certificate (request.h's tls_peer): the subject
// as RFC 2253 text, its CN, and its URI SANs (SPIFFE IDs).
#pragma once

#include <optional>
#include <string_view>

#include "api/http/request.h"

struct x509_st;

namespace hsmb::api {

tls_peer tls_peer_of(const x509_st& cert);
// The same from PEM text (tests); nullopt when it is not a certificate.
std::optional<tls_peer> tls_peer_from_pem(std::string_view pem);

}  // namespace hsmb::api
