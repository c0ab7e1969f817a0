// Versioned values as clients send them back: "vault:v<N>:<base64>" ciphertexts and HMACs, and
// signatures in both marshalings (asn1: base64 of DER for ECDSA; jws: base64url of r||s). The
// text goes through what key_service::decrypt, verify and verify_hmac do with it before and
// without an HSM: parse_versioned, the ECDSA conversions, and verification against real public
// keys (P-256, P-384, Ed25519, RSA-2048) built by make_public_key, as the catalog builds them.
//
// Input: one byte of options (key, hash, marshaling, RSA padding), then the text.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "broker/keys/public_key.h"
#include "broker/keys/signature.h"
#include "broker/keys/versioned_value.h"
#include "tests/fuzz/fuzz_support.h"

using namespace hsmb;

namespace {

struct test_key {
  key_type type;
  EVP_PKEY* priv;
  public_key pub;
};

bytes bn_param(EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  FUZZ_CHECK(EVP_PKEY_get_bn_param(k, name, &bn) == 1);
  bytes out(static_cast<std::size_t>(BN_num_bytes(bn)));
  BN_bn2bin(bn, out.data());
  BN_free(bn);
  return out;
}

// The public half as a worker reports it (public_key_blob), made into a key as the broker does.
test_key make(key_type type) {
  EVP_PKEY* k = nullptr;
  public_key_blob blob;
  switch (type) {
    case key_type::ecdsa_p256:
    case key_type::ecdsa_p384: {
      k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", type == key_type::ecdsa_p256 ? "P-256" : "P-384");
      FUZZ_CHECK(k);
      std::array<std::uint8_t, 256> point{};
      std::size_t n = 0;
      FUZZ_CHECK(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(), point.size(), &n) == 1);
      blob.k = public_key_blob::kind::ec;
      blob.b.assign(point.begin(), point.begin() + static_cast<std::ptrdiff_t>(n));
      break;
    }
    case key_type::ed25519: {
      k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      FUZZ_CHECK(k);
      blob.k = public_key_blob::kind::eddsa;
      blob.b.resize(32);
      std::size_t n = blob.b.size();
      FUZZ_CHECK(EVP_PKEY_get_raw_public_key(k, blob.b.data(), &n) == 1);
      break;
    }
    default: {
      k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048));
      FUZZ_CHECK(k);
      blob.k = public_key_blob::kind::rsa;
      blob.a = bn_param(k, OSSL_PKEY_PARAM_RSA_N);
      blob.b = bn_param(k, OSSL_PKEY_PARAM_RSA_E);
    }
  }
  auto pub = make_public_key(blob, type);
  FUZZ_CHECK(pub);
  return {type, k, *pub};
}

bytes sign_with(const test_key& k, hash_alg hash, sign_mechanism mech, byte_view tbs) {
  bytes sig(1024);
  std::size_t n = sig.size();
  if (mech == sign_mechanism::eddsa) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    FUZZ_CHECK(EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, k.priv) == 1);
    FUZZ_CHECK(EVP_DigestSign(ctx, sig.data(), &n, tbs.data(), tbs.size()) == 1);
    EVP_MD_CTX_free(ctx);
  } else {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(k.priv, nullptr);
    FUZZ_CHECK(EVP_PKEY_sign_init(ctx) == 1);
    const EVP_MD* md = hash == hash_alg::sha256 ? EVP_sha256() : EVP_sha384();
    if (mech == sign_mechanism::rsa_pss) {
      EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING);
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md);
      EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST);
    } else if (mech == sign_mechanism::rsa_pkcs1v15) {
      EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING);
    }
    FUZZ_CHECK(EVP_PKEY_CTX_set_signature_md(ctx, md) == 1);
    FUZZ_CHECK(EVP_PKEY_sign(ctx, sig.data(), &n, tbs.data(), tbs.size()) == 1);
    EVP_PKEY_CTX_free(ctx);
  }
  sig.resize(n);
  return sig;
}

const std::vector<test_key>& keys() {
  // Made once and kept for the whole run (never freed: not a leak to report).
  static const auto* all = new std::vector<test_key>{make(key_type::ecdsa_p256), make(key_type::ecdsa_p384),
                                                     make(key_type::ed25519), make(key_type::rsa_2048)};
  return *all;
}

const std::string message = "the message a client signed";

// What key_service::verify does with a parsed signature; true when it is valid.
bool verify_like_the_broker(const test_key& k, hash_alg hash, bool jws, bool pkcs1v15, const versioned_value& parsed) {
  sign_mechanism mech = k.type == key_type::ed25519 ? sign_mechanism::eddsa
                        : is_rsa(k.type)            ? (pkcs1v15 ? sign_mechanism::rsa_pkcs1v15 : sign_mechanism::rsa_pss)
                                                    : sign_mechanism::ecdsa;
  bytes tbs;
  if (mech == sign_mechanism::eddsa) {
    tbs.assign(message.begin(), message.end());
  } else if (hash == hash_alg::none) {
    if (mech != sign_mechanism::rsa_pkcs1v15) return false;  // refused before verification
    tbs.assign(message.begin(), message.end());
  } else {
    auto d = compute_digest(hash, as_bytes(message));
    FUZZ_CHECK(d && d->size() == digest_size(hash));
    tbs = *d;
  }
  bytes sig(parsed.value.begin(), parsed.value.end());
  if (mech == sign_mechanism::ecdsa && jws) {
    auto der = sig.size() == 2 * ecdsa_field_bytes(k.type) ? ecdsa_raw_to_der(sig) : std::nullopt;
    if (!der) return false;
    sig = std::move(*der);
  }
  return verify_signature(k.pub, k.type, hash, mech, tbs, sig);
}

// The harness works: a real signature in each marshaling verifies through the same path.
bool self_test() {
  for (auto& k : keys()) {
    for (bool jws : {false, true}) {
      sign_mechanism mech = k.type == key_type::ed25519 ? sign_mechanism::eddsa
                            : is_rsa(k.type)            ? sign_mechanism::rsa_pss
                                                        : sign_mechanism::ecdsa;
      hash_alg hash = k.type == key_type::ecdsa_p384 ? hash_alg::sha384 : hash_alg::sha256;
      bytes tbs = mech == sign_mechanism::eddsa ? bytes(message.begin(), message.end())
                                                : *compute_digest(hash, as_bytes(message));
      bytes sig = sign_with(k, hash, mech, tbs);  // DER for ECDSA
      if (mech == sign_mechanism::ecdsa && jws) sig = *ecdsa_der_to_raw(sig, ecdsa_field_bytes(k.type));
      auto text = format_versioned(3, sig, jws ? value_encoding::base64url : value_encoding::base64);
      auto parsed = parse_versioned(text, jws ? value_encoding::base64url : value_encoding::base64);
      FUZZ_CHECK(parsed && parsed->version == 3);
      FUZZ_CHECK(verify_like_the_broker(k, hash, jws, false, *parsed));
      parsed->value[parsed->value.size() / 2] ^= 1;
      FUZZ_CHECK(!verify_like_the_broker(k, hash, jws, false, *parsed));
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static bool ready = self_test();
  (void)ready;
  if (size == 0) return 0;
  std::uint8_t options = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  for (auto enc : {value_encoding::base64, value_encoding::base64url}) {
    auto parsed = parse_versioned(text, enc);
    if (!parsed) continue;
    FUZZ_CHECK(parsed->version >= 1 && parsed->version <= 0x7fffffffu);
    // What the broker would write for it reads back the same.
    auto again = parse_versioned(format_versioned(parsed->version, parsed->value, enc), enc);
    FUZZ_CHECK(again && again->version == parsed->version && again->value == parsed->value);
  }

  // A signature: options pick the key, the hash and the marshaling.
  auto& k = keys()[options & 3];
  static constexpr hash_alg hashes[] = {hash_alg::sha256, hash_alg::sha1,   hash_alg::sha224,
                                        hash_alg::sha384, hash_alg::sha512, hash_alg::none};
  hash_alg hash = hashes[(options >> 2) % 6];
  bool jws = options & 0x20;
  bool pkcs1v15 = options & 0x40;
  if (auto parsed = parse_versioned(text, jws ? value_encoding::base64url : value_encoding::base64)) {
    verify_like_the_broker(k, hash, jws, pkcs1v15, *parsed);
    // The ECDSA encodings on whatever the value is: DER to r||s and back is the same signature.
    if (is_ecdsa(k.type)) {
      auto field = ecdsa_field_bytes(k.type);
      if (auto raw = ecdsa_der_to_raw(parsed->value, field)) {
        FUZZ_CHECK(raw->size() == 2 * field);
        auto der = ecdsa_raw_to_der(*raw);
        FUZZ_CHECK(der);
        auto raw2 = ecdsa_der_to_raw(*der, field);
        FUZZ_CHECK(raw2 && *raw2 == *raw);
      }
      if (!parsed->value.empty() && parsed->value.size() % 2 == 0) {
        auto der = ecdsa_raw_to_der(parsed->value);
        FUZZ_CHECK(der);
      }
    }
  }
  return 0;
}
