#include "pkcs11_front/certificates.h"

#include <stdlib.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "common/base64.h"
#include "pkcs11_front/module_state.h"

namespace hsmb::p11 {
namespace json = boost::json;
namespace {

// The length's bytes are pushed one by one into a reserved vector: inserting initializer lists
// into a one-byte vector trips GCC 12's -Warray-bounds false positives at -O3.
bytes tlv(std::uint8_t tag, byte_view content) {
  auto n = content.size();
  bytes out;
  out.reserve(n + 5);
  out.push_back(tag);
  int size_bytes = n < 128 ? 0 : n < 256 ? 1 : n < 65536 ? 2 : 3;
  if (size_bytes == 0) out.push_back(static_cast<std::uint8_t>(n));
  else out.push_back(static_cast<std::uint8_t>(0x80 | size_bytes));
  for (int i = size_bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

bytes text(std::string_view s) { return bytes(s.begin(), s.end()); }

// The signature algorithm, and the hash the broker signs with.
std::pair<bytes, std::string> algorithm(const key_info& k) {
  if (k.type == "ed25519") return {{0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70}, ""};
  if (k.type == "ecdsa-p384") return {{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}, "sha2-384"};
  if (k.family == key_family::ec) return {{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}, "sha2-256"};
  return {{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00}, "sha2-256"};
}

}  // namespace

bool certificates_enabled() {
  static const bool on = [] {
    const char* v = ::getenv("HSM_BROKER_PKCS11_CERTS");
    return v && *v && *v != '0';
  }();
  return on;
}

bytes certificate_name(const object& o) {
  bytes cn{0x06, 0x03, 0x55, 0x04, 0x03};  // id-at-commonName
  return tlv(0x30, tlv(0x31, tlv(0x30, cat({cn, tlv(0x0c, text(o.id()))}))));
}

bytes certificate_serial(const object& o) {
  bytes v;
  for (int shift = 24; shift >= 0; shift -= 8)
    if (auto b = static_cast<std::uint8_t>(o.version >> shift); b || !v.empty()) v.push_back(b);
  if (v.empty() || v.front() & 0x80) v.insert(v.begin(), 0);
  return tlv(0x02, v);
}

std::expected<bytes, CK_RV> make_certificate(const object& o) {
  auto [alg, hash] = algorithm(*o.key);
  auto name = certificate_name(o);
  bytes version = {0xa0, 0x03, 0x02, 0x01, 0x02};  // v3
  auto validity = tlv(0x30, cat({tlv(0x17, text("200101000000Z")), tlv(0x18, text("99991231235959Z"))}));  // RFC 5280: no expiry
  auto tbs = tlv(0x30, cat({version, certificate_serial(o), alg, name, validity, name, o.pub->spki}));
  json::object body{{"input", base64_encode(tbs)}, {"key_version", o.version}};
  std::string path = "/v1/transit/sign/" + path_segment(o.key->name);
  if (!hash.empty()) path += "/" + hash;
  if (o.key->family == key_family::rsa) body["signature_algorithm"] = "pkcs1v15";
  auto& st = state();
  auto r = st.call("POST", path, json::serialize(body));  // asn1 marshaling: ECDSA in DER, as X.509 has it
  if (!r) return std::unexpected(r.error());
  if (r->status != 200) return std::unexpected(st.status_rv(*r, purpose::sign));
  auto* d = r->data() ? r->data()->if_object() : nullptr;
  auto* sig = d ? d->if_contains("signature") : nullptr;
  if (!sig || !sig->is_string()) return std::unexpected(CKR_GENERAL_ERROR);
  std::string_view t(sig->as_string());
  auto colon = t.rfind(':');
  auto value = colon == std::string_view::npos ? std::nullopt : base64_decode(t.substr(colon + 1));
  if (!value) return std::unexpected(CKR_GENERAL_ERROR);
  bytes bits{0x00};
  bits.insert(bits.end(), value->begin(), value->end());
  return tlv(0x30, cat({tbs, alg, tlv(0x03, bits)}));
}

}  // namespace hsmb::p11
