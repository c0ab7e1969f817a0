#include "pkcs11_front/key_info.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <charconv>

namespace hsmb::p11 {
namespace json = boost::json;
namespace {

bytes der_octet_string(byte_view content) {
  bytes out{0x04};
  if (content.size() < 128) {
    out.push_back(static_cast<std::uint8_t>(content.size()));
  } else if (content.size() < 256) {
    out.push_back(0x81);
    out.push_back(static_cast<std::uint8_t>(content.size()));
  } else {
    out.push_back(0x82);
    out.push_back(static_cast<std::uint8_t>(content.size() >> 8));
    out.push_back(static_cast<std::uint8_t>(content.size()));
  }
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

bytes bn_param(EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(k, name, &bn) != 1) return {};
  bytes out(static_cast<std::size_t>(BN_num_bytes(bn)));
  BN_bn2bin(bn, out.data());
  BN_free(bn);
  return out;
}

std::uint32_t uint_of(const json::object& o, const char* field, std::uint32_t fallback) {
  auto* v = o.if_contains(field);
  if (!v) return fallback;
  if (v->is_int64() && v->as_int64() >= 0) return static_cast<std::uint32_t>(v->as_int64());
  if (v->is_uint64()) return static_cast<std::uint32_t>(v->as_uint64());
  return fallback;
}

}  // namespace

bytes p256_oid() { return {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}; }
bytes p384_oid() { return {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}; }
bytes ed25519_oid() { return {0x06, 0x03, 0x2b, 0x65, 0x70}; }

std::optional<key_family> family_of(std::string_view t) {
  if (t == "ecdsa-p256" || t == "ecdsa-p384") return key_family::ec;
  if (t == "rsa-2048" || t == "rsa-3072" || t == "rsa-4096") return key_family::rsa;
  if (t == "ed25519") return key_family::ed25519;
  if (t == "aes256-gcm96" || t == "aes128-gcm96") return key_family::aes;
  if (t == "hmac") return key_family::hmac;
  return std::nullopt;
}

bool is_asymmetric(key_family f) { return f == key_family::ec || f == key_family::rsa || f == key_family::ed25519; }

std::optional<public_key_info> parse_public_key(std::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return std::nullopt;
  EVP_PKEY* raw = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (!raw) return std::nullopt;
  public_key_info info;
  info.pkey.reset(raw, EVP_PKEY_free);
  int n = i2d_PUBKEY(raw, nullptr);
  if (n <= 0) return std::nullopt;
  info.spki.resize(static_cast<std::size_t>(n));
  auto* p = info.spki.data();
  i2d_PUBKEY(raw, &p);
  switch (EVP_PKEY_get_base_id(raw)) {
    case EVP_PKEY_EC: {
      char group[64] = {};
      size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(raw, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1) return std::nullopt;
      std::string_view g(group, len);
      if (g == "prime256v1" || g == "P-256") info.ec_params = p256_oid();
      else if (g == "secp384r1" || g == "P-384") info.ec_params = p384_oid();
      else return std::nullopt;
      unsigned char point[160];
      size_t plen = 0;
      if (EVP_PKEY_get_octet_string_param(raw, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point, &plen) != 1)
        return std::nullopt;
      info.ec_point = der_octet_string(byte_view(point, plen));
      break;
    }
    case EVP_PKEY_RSA:
      info.modulus = bn_param(raw, OSSL_PKEY_PARAM_RSA_N);
      info.public_exponent = bn_param(raw, OSSL_PKEY_PARAM_RSA_E);
      info.modulus_bits = static_cast<CK_ULONG>(EVP_PKEY_get_bits(raw));
      break;
    case EVP_PKEY_ED25519: {
      unsigned char pub[32];
      size_t plen = sizeof pub;
      if (EVP_PKEY_get_raw_public_key(raw, pub, &plen) != 1) return std::nullopt;
      info.ec_params = ed25519_oid();
      info.ec_point = der_octet_string(byte_view(pub, plen));
      break;
    }
    default: return std::nullopt;
  }
  return info;
}

std::optional<key_info> parse_key_info(const json::value& data) {
  auto* o = data.if_object();
  if (!o) return std::nullopt;
  key_info k;
  auto* name = o->if_contains("name");
  auto* type = o->if_contains("type");
  if (!name || !name->is_string() || !type || !type->is_string()) return std::nullopt;
  k.name = std::string(name->as_string());
  k.type = std::string(type->as_string());
  auto fam = family_of(k.type);
  if (!fam) return std::nullopt;
  k.family = *fam;
  k.latest = uint_of(*o, "latest_version", 0);
  k.min_decryption = std::max<std::uint32_t>(1, uint_of(*o, "min_decryption_version", 1));
  if (auto* d = o->if_contains("deletion_allowed"); d && d->is_bool()) k.deletion_allowed = d->as_bool();
  auto* keys = o->if_contains("keys");
  if (!keys || !keys->is_object()) return std::nullopt;
  for (auto& [version_text, entry] : keys->as_object()) {
    std::uint32_t v = 0;
    auto r = std::from_chars(version_text.data(), version_text.data() + version_text.size(), v);
    if (r.ec != std::errc{} || v == 0 || v < k.min_decryption) continue;  // versions the caller can no longer use
    if (!is_asymmetric(k.family)) {
      k.versions[v] = nullptr;
      continue;
    }
    auto* eo = entry.if_object();
    // Ed25519's public_key is raw base64 as in Vault; the PEM of every type is in public_key_pem.
    auto* pem = eo ? eo->if_contains("public_key_pem") : nullptr;
    if (!pem && eo) pem = eo->if_contains("public_key");
    if (!pem || !pem->is_string()) continue;  // a version without its public key is not presented
    auto pk = parse_public_key(std::string_view(pem->as_string()));
    if (!pk) continue;
    k.versions[v] = std::make_shared<const public_key_info>(std::move(*pk));
  }
  return k;
}

std::size_t signature_size(const key_info& k) {
  if (k.type == "ecdsa-p256") return 64;
  if (k.type == "ecdsa-p384") return 96;
  if (k.type == "ed25519") return 64;
  if (k.type == "rsa-2048") return 256;
  if (k.type == "rsa-3072") return 384;
  if (k.type == "rsa-4096") return 512;
  return 0;
}

CK_ULONG secret_value_len(const key_info& k) {
  if (k.type == "aes128-gcm96") return 16;
  if (k.type == "aes256-gcm96") return 32;
  return 64;  // the broker's HMAC keys (hsm_backends/pkcs11/templates.cpp)
}

}  // namespace hsmb::p11
