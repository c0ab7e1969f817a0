// The PKCS#11 backend in-process against a real SoftHSM2 token; signatures checked with OpenSSL.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <memory>
#include <set>
#include <thread>

#include "common/base64.h"
#include "hsm_backends/pkcs11/p11.h"
#include "hsm_backends/pkcs11/pkcs11_backend.h"
#include "tests/lib/must.h"
#include "tests/lib/softhsm_token.h"

using namespace hsmb;

namespace {

using test::must;
template <class T>
unsigned long error_of(const hsm_result<T>& r) {
  REQUIRE_FALSE(r.has_value());
  return r.error().ckr;
}

member_settings settings(const std::string& token_label, const std::string& pin) {
  member_settings s;
  s.module = test::softhsm_token::module_path();
  s.token_label = token_label;
  s.pin = pin.c_str();
  s.sessions = 4;
  return s;
}

// One SoftHSM configuration for the whole run: "hsmb-test" for the tests, "second" for PIN tests.
struct environment {
  test::softhsm_token token;
  std::unique_ptr<hsm_backend> backend;
  token_description description;
  environment() {
    token.add_token("second");
    token.use_conf();
    backend = make_pkcs11_backend();
    description = must(backend->open(settings(token.label(), token.pin())));
  }
};
environment& env() {
  static environment e;
  return e;
}
hsm_backend& hsm() { return *env().backend; }

bytes b(std::string_view s) { return bytes(s.begin(), s.end()); }

// pkcs11-tool, logged in to the test token: another process acting on it, as another broker would.
int p11tool(const std::string& args) {
  return std::system(("pkcs11-tool --module " + test::softhsm_token::module_path() + " --token-label " + env().token.label() +
                      " --login --pin " + env().token.pin() + " " + args + " >/dev/null 2>&1").c_str());
}

// The hex of a canary CKA_ID whose time is 1970 (`n` told apart): a pair made long ago.
std::string old_canary_id_hex(char n) {
  return hex_encode(as_bytes(std::string(canary_label) + "#00000000000000010000000" + n));
}

// ---- OpenSSL verification ------------------------------------------------------------------

using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using pctx_ptr = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;

pkey_ptr from_params(const char* type, OSSL_PARAM* params) {
  pctx_ptr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* key = nullptr;
  REQUIRE(EVP_PKEY_fromdata_init(ctx.get()) == 1);
  REQUIRE(EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) == 1);
  return pkey_ptr(key, EVP_PKEY_free);
}

pkey_ptr openssl_key(const public_key_blob& blob) {
  if (blob.k == public_key_blob::kind::eddsa) {
    REQUIRE(blob.b.size() == 32);
    return pkey_ptr(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, blob.b.data(), blob.b.size()),
                    EVP_PKEY_free);
  }
  if (blob.k == public_key_blob::kind::ec) {
    const unsigned char* p = blob.a.data();
    ASN1_OBJECT* oid = d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(blob.a.size()));
    REQUIRE(oid != nullptr);
    std::string curve = OBJ_nid2sn(OBJ_obj2nid(oid));
    ASN1_OBJECT_free(oid);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, curve.data(), 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, const_cast<std::uint8_t*>(blob.b.data()),
                                          blob.b.size()),
        OSSL_PARAM_construct_end()};
    return from_params("EC", params);
  }
  REQUIRE(blob.k == public_key_blob::kind::rsa);
  BIGNUM* n = BN_bin2bn(blob.a.data(), static_cast<int>(blob.a.size()), nullptr);
  BIGNUM* e = BN_bin2bn(blob.b.data(), static_cast<int>(blob.b.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  pkey_ptr key = from_params("RSA", params);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(n);
  BN_free(e);
  return key;
}

const EVP_MD* md_of(hash_alg h) {
  switch (h) {
    case hash_alg::sha1: return EVP_sha1();
    case hash_alg::sha224: return EVP_sha224();
    case hash_alg::sha256: return EVP_sha256();
    case hash_alg::sha384: return EVP_sha384();
    case hash_alg::sha512: return EVP_sha512();
    default: return nullptr;
  }
}

bytes digest(hash_alg h, byte_view data) {
  bytes out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), out.data(), &len, md_of(h), nullptr) == 1);
  out.resize(len);
  return out;
}

// r||s as the DER ECDSA-Sig-Value OpenSSL verifies.
bytes ecdsa_der(byte_view rs) {
  std::size_t half = rs.size() / 2;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(rs.data(), static_cast<int>(half), nullptr),
                 BN_bin2bn(rs.data() + half, static_cast<int>(half), nullptr));
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig, &der);
  bytes out(der, der + len);
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  return out;
}

bool verify_digest(const public_key_blob& blob, sign_mechanism m, hash_alg h, byte_view dgst, byte_view sig) {
  pkey_ptr key = openssl_key(blob);
  pctx_ptr ctx(EVP_PKEY_CTX_new(key.get(), nullptr), EVP_PKEY_CTX_free);
  REQUIRE(EVP_PKEY_verify_init(ctx.get()) == 1);
  bytes der;
  if (m == sign_mechanism::ecdsa) {
    der = ecdsa_der(sig);
    sig = der;
  } else {
    REQUIRE(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), m == sign_mechanism::rsa_pss ? RSA_PKCS1_PSS_PADDING
                                                                                  : RSA_PKCS1_PADDING) == 1);
    REQUIRE(EVP_PKEY_CTX_set_signature_md(ctx.get(), md_of(h)) == 1);
    if (m == sign_mechanism::rsa_pss) REQUIRE(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) == 1);
  }
  return EVP_PKEY_verify(ctx.get(), sig.data(), sig.size(), dgst.data(), dgst.size()) == 1;
}

bool verify_ed25519(const public_key_blob& blob, byte_view msg, byte_view sig) {
  pkey_ptr key = openssl_key(blob);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  REQUIRE(EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1);
  return EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), msg.data(), msg.size()) == 1;
}

}  // namespace

TEST_CASE("open describes the token and probe answers") {
  CHECK(env().description.label == "hsmb-test");
  CHECK(env().description.manufacturer == "SoftHSM project");
  CHECK(!env().description.model.empty());
  CHECK(!env().description.serial.empty());
  must(hsm().probe());
}

TEST_CASE("every key type generates, and public_key returns the same blob") {
  struct expectation {
    key_type type;
    public_key_blob::kind kind;
    std::size_t a_size, b_size;
  };
  using k = public_key_blob::kind;
  for (auto [type, kind, a_size, b_size] : {
           expectation{key_type::aes128_gcm96, k::none, 0, 0}, expectation{key_type::aes256_gcm96, k::none, 0, 0},
           expectation{key_type::hmac, k::none, 0, 0}, expectation{key_type::ecdsa_p256, k::ec, 10, 65},
           expectation{key_type::ecdsa_p384, k::ec, 7, 97}, expectation{key_type::ed25519, k::eddsa, 5, 32},
           expectation{key_type::rsa_2048, k::rsa, 256, 3}, expectation{key_type::rsa_3072, k::rsa, 384, 3},
           expectation{key_type::rsa_4096, k::rsa, 512, 3}}) {
    std::string label = "gen/" + std::string(to_string(type));
    CAPTURE(label);
    public_key_blob blob = must(hsm().generate_key(label, type));
    CHECK(blob.k == kind);
    CHECK(blob.a.size() == a_size);
    CHECK(blob.b.size() == b_size);
    if (kind == k::ec) CHECK(blob.b[0] == 0x04);
    if (kind == k::rsa) CHECK(blob.b == bytes{1, 0, 1});
    if (kind == k::none) {
      CHECK(error_of(hsm().public_key(label)) == ckr_object_not_found);
      continue;
    }
    public_key_blob again = must(hsm().public_key(label));
    CHECK(again.k == blob.k);
    CHECK(again.a == blob.a);
    CHECK(again.b == blob.b);
  }
}

TEST_CASE("AES-GCM round trips, with fresh nonces, and rejects tampering") {
  for (key_type type : {key_type::aes128_gcm96, key_type::aes256_gcm96}) {
    std::string label = "aes/" + std::string(to_string(type));
    must(hsm().generate_key(label, type));
    bytes pt = b("attack at dawn");
    for (bytes aad : {bytes{}, b("context")}) {
      bytes sealed = must(hsm().encrypt(label, pt, aad));
      CHECK(sealed.size() == 12 + pt.size() + 16);
      secure_bytes opened = must(hsm().decrypt(label, sealed, aad));
      CHECK(bytes(opened.begin(), opened.end()) == pt);
    }
    bytes one = must(hsm().encrypt(label, pt, {})), two = must(hsm().encrypt(label, pt, {}));
    CHECK(one != two);
    CHECK(!std::equal(one.begin(), one.begin() + 12, two.begin()));

    bytes aad = b("context");
    bytes sealed = must(hsm().encrypt(label, pt, aad));
    for (std::size_t where : {std::size_t{0}, std::size_t{12}, sealed.size() - 1}) {  // nonce, ciphertext, tag
      bytes bad = sealed;
      bad[where] ^= 1;
      CHECK(error_of(hsm().decrypt(label, bad, aad)) == CKR_ENCRYPTED_DATA_INVALID);
    }
    CHECK(error_of(hsm().decrypt(label, sealed, b("other"))) == CKR_ENCRYPTED_DATA_INVALID);
    CHECK(error_of(hsm().decrypt(label, bytes(27), aad)) == CKR_ENCRYPTED_DATA_LEN_RANGE);
    must(hsm().probe());  // the session survived the failed tag checks
  }
}

TEST_CASE("AES-GCM handles empty plaintext, and nonces stay unique across pool refills") {
  must(hsm().generate_key("aes/nonces", key_type::aes256_gcm96));
  bytes sealed = must(hsm().encrypt("aes/nonces", {}, b("aad")));
  CHECK(sealed.size() == 28);
  CHECK(must(hsm().decrypt("aes/nonces", sealed, b("aad"))).empty());

  std::set<bytes> nonces;
  std::vector<std::thread> threads;
  std::mutex m;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        auto r = hsm().encrypt("aes/nonces", b("x"), {});
        std::lock_guard lock(m);
        if (r) nonces.insert(bytes(r->begin(), r->begin() + 12));
      }
    });
  for (auto& t : threads) t.join();
  CHECK(nonces.size() == 400);
}

TEST_CASE("ECDSA signatures verify with OpenSSL") {
  for (auto [type, hash] : {std::pair{key_type::ecdsa_p256, hash_alg::sha256},
                            std::pair{key_type::ecdsa_p384, hash_alg::sha384},
                            std::pair{key_type::ecdsa_p256, hash_alg::sha512}}) {
    std::string label = "ec/" + std::string(to_string(type));
    CAPTURE(label);
    public_key_blob pub = must(hsm().generate_key(label, type));
    bytes dgst = digest(hash, b("message"));
    bytes sig = must(hsm().sign(label, sign_mechanism::ecdsa, hash, dgst));
    CHECK(sig.size() == 2 * ((pub.b.size() - 1) / 2));
    CHECK(verify_digest(pub, sign_mechanism::ecdsa, hash, dgst, sig));
    dgst[0] ^= 1;
    CHECK_FALSE(verify_digest(pub, sign_mechanism::ecdsa, hash, dgst, sig));
    CHECK(error_of(hsm().sign(label, sign_mechanism::ecdsa, hash, bytes(5))) == CKR_DATA_LEN_RANGE);
  }
}

TEST_CASE("Ed25519 signatures verify with OpenSSL") {
  public_key_blob pub = must(hsm().generate_key("ed/key", key_type::ed25519));
  bytes msg = b("the whole message, not a digest");
  bytes sig = must(hsm().sign("ed/key", sign_mechanism::eddsa, hash_alg::none, msg));
  CHECK(sig.size() == 64);
  CHECK(verify_ed25519(pub, msg, sig));
  CHECK_FALSE(verify_ed25519(pub, b("another message"), sig));
}

TEST_CASE("RSA PSS and PKCS#1 v1.5 signatures verify with OpenSSL") {
  public_key_blob pub = must(hsm().generate_key("rsa/key", key_type::rsa_2048));
  for (sign_mechanism m : {sign_mechanism::rsa_pss, sign_mechanism::rsa_pkcs1v15}) {
    for (hash_alg h : {hash_alg::sha1, hash_alg::sha224, hash_alg::sha256, hash_alg::sha384, hash_alg::sha512}) {
      CAPTURE(static_cast<int>(m));
      CAPTURE(to_string(h));
      bytes dgst = digest(h, b("message"));
      bytes sig = must(hsm().sign("rsa/key", m, h, dgst));
      CHECK(sig.size() == 256);
      CHECK(verify_digest(pub, m, h, dgst, sig));
      dgst[0] ^= 1;
      CHECK_FALSE(verify_digest(pub, m, h, dgst, sig));
    }
    CHECK(error_of(hsm().sign("rsa/key", m, hash_alg::sha256, bytes(20))) == CKR_DATA_LEN_RANGE);
  }
  CHECK_FALSE(is_device_error(error_of(hsm().sign("rsa/key", sign_mechanism::rsa_pss, hash_alg::none, bytes(32)))));
}

TEST_CASE("HMAC is deterministic and differs per key") {
  must(hsm().generate_key("hmac/one", key_type::hmac));
  must(hsm().generate_key("hmac/two", key_type::hmac));
  bytes data = b("data");
  bytes one = must(hsm().hmac("hmac/one", hash_alg::sha256, data));
  CHECK(one.size() == 32);
  CHECK(must(hsm().hmac("hmac/one", hash_alg::sha256, data)) == one);
  CHECK(must(hsm().hmac("hmac/two", hash_alg::sha256, data)) != one);
  CHECK(must(hsm().hmac("hmac/one", hash_alg::sha512, data)).size() == 64);
  CHECK(must(hsm().hmac("hmac/one", hash_alg::sha1, data)).size() == 20);
}

TEST_CASE("metadata records are created, updated, listed and deleted") {
  auto find = [](const std::string& name) -> std::optional<bytes> {
    for (auto& r : must(hsm().list_metadata()))
      if (r.name == name) return r.value;
    return std::nullopt;
  };
  must(hsm().put_metadata("alpha", b("v1")));
  must(hsm().put_metadata("beta", b("b")));
  CHECK(find("alpha") == b("v1"));
  must(hsm().put_metadata("alpha", b("version two, longer")));
  CHECK(find("alpha") == b("version two, longer"));
  CHECK(find("beta") == b("b"));
  std::size_t alphas = 0;
  for (auto& r : must(hsm().list_metadata())) alphas += r.name == "alpha";
  CHECK(alphas == 1);
  must(hsm().delete_metadata("alpha"));
  CHECK_FALSE(find("alpha"));
  must(hsm().delete_metadata("alpha"));  // absent is fine
  must(hsm().put_metadata("alpha", b("again")));
  CHECK(find("alpha") == b("again"));
}

TEST_CASE("destroy_objects removes every object under the prefix") {
  must(hsm().generate_key("doomed/v1", key_type::ecdsa_p256));
  must(hsm().generate_key("doomed/v2", key_type::aes256_gcm96));
  must(hsm().generate_key("kept/v1", key_type::aes256_gcm96));
  CHECK(must(hsm().destroy_objects("doomed/")) == 3);  // key pair + secret key
  CHECK(error_of(hsm().public_key("doomed/v1")) == ckr_object_not_found);
  CHECK(error_of(hsm().sign("doomed/v1", sign_mechanism::ecdsa, hash_alg::none, bytes(32))) == ckr_object_not_found);
  CHECK(error_of(hsm().encrypt("doomed/v2", b("x"), {})) == ckr_object_not_found);
  must(hsm().encrypt("kept/v1", b("x"), {}));
  CHECK(must(hsm().destroy_objects("doomed/")) == 0);
  CHECK(error_of(hsm().destroy_objects("")) == CKR_ARGUMENTS_BAD);
}

TEST_CASE("a handle cached before another backend destroyed the key is found stale, not reused") {
  must(hsm().generate_key("shared/v1", key_type::aes256_gcm96));
  must(hsm().encrypt("shared/v1", b("x"), {}));  // cached in the main backend
  auto other = make_pkcs11_backend();
  must(other->open(settings(env().token.label(), env().token.pin())));
  CHECK(must(other->destroy_objects("shared/")) == 1);
  CHECK(error_of(hsm().encrypt("shared/v1", b("x"), {})) == ckr_object_not_found);
}

TEST_CASE("canary pairs made by several brokers at once: all pick one pair, the others are removed") {
  // Brokers starting together on a fresh token each find no canary and each make one.
  auto open_another = [] {
    auto be = make_pkcs11_backend();
    must(be->open(settings(env().token.label(), env().token.pin())));
    return be;
  };
  auto first = open_another(), second = open_another(), third = open_another();
  must(first->generate_key(canary_label, key_type::ecdsa_p256));
  must(second->generate_key(canary_label, key_type::ecdsa_p256));
  must(third->generate_key(canary_label, key_type::ecdsa_p256));
  // Fresh workers: each signs with the private key it finds and verifies against the public one.
  for (int i = 0; i < 3; ++i) {
    auto fresh = open_another();
    public_key_blob pub = must(fresh->public_key(canary_label));
    bytes dgst = digest(hash_alg::sha256, b("challenge"));
    bytes sig = must(fresh->sign(canary_label, sign_mechanism::ecdsa, hash_alg::sha256, dgst));
    CHECK_MESSAGE(verify_digest(pub, sign_mechanism::ecdsa, hash_alg::sha256, dgst, sig), "worker " << i);
  }
  CHECK(must(hsm().destroy_objects(canary_label)) == 2);  // one pair is left of three
}

TEST_CASE("a canary left as halves of pairs (another broker's prune or generation) still pairs whole") {
  auto maker = make_pkcs11_backend();
  must(maker->open(settings(env().token.label(), env().token.pin())));
  for (int i = 0; i < 4; ++i) must(maker->generate_key(canary_label, key_type::ecdsa_p256));
  // Two private halves go, as a prune that saw only them would leave it: stray public keys.
  for (int i = 0; i < 2; ++i) REQUIRE(p11tool("--delete-object --type privkey --label " + std::string(canary_label)) == 0);
  // And a stray half from long ago (its CKA_ID carries the time it was made: 1970).
  std::string old_hex = old_canary_id_hex('0');
  REQUIRE(p11tool("--keypairgen --key-type EC:prime256v1 --label " + std::string(canary_label) + " --id " + old_hex) == 0);
  REQUIRE(p11tool("--delete-object --type privkey --id " + old_hex) == 0);
  auto fresh = make_pkcs11_backend();
  must(fresh->open(settings(env().token.label(), env().token.pin())));
  public_key_blob pub = must(fresh->public_key(canary_label));
  bytes dgst = digest(hash_alg::sha256, b("challenge"));
  CHECK(verify_digest(pub, sign_mechanism::ecdsa, hash_alg::sha256, dgst,
                      must(fresh->sign(canary_label, sign_mechanism::ecdsa, hash_alg::sha256, dgst))));
  // One whole pair, and the two young halves: another process's C_GenerateKeyPair may be under
  // way on them (a cluster's nodes starting at once). The old half and the other pair are gone.
  CHECK(must(hsm().destroy_objects(canary_label)) == 4);
}

TEST_CASE("a canary that is only a young public half (another broker's generation under way) is not found") {
  // SoftHSM2 writes a pair's halves one after the other: a broker that took the public half as
  // the canary would sign with a private key not yet written ("no object labelled") and fail to start.
  auto maker = make_pkcs11_backend();
  must(maker->open(settings(env().token.label(), env().token.pin())));
  must(maker->generate_key(canary_label, key_type::ecdsa_p256));
  REQUIRE(p11tool("--delete-object --type privkey --label " + std::string(canary_label)) == 0);
  auto fresh = make_pkcs11_backend();
  must(fresh->open(settings(env().token.label(), env().token.pin())));
  CHECK(error_of(fresh->public_key(canary_label)) == ckr_object_not_found);
  // So the broker makes its own pair, and that one signs.
  public_key_blob pub = must(fresh->generate_key(canary_label, key_type::ecdsa_p256));
  CHECK(must(fresh->public_key(canary_label)).b == pub.b);
  bytes dgst = digest(hash_alg::sha256, b("challenge"));
  CHECK(verify_digest(pub, sign_mechanism::ecdsa, hash_alg::sha256, dgst,
                      must(fresh->sign(canary_label, sign_mechanism::ecdsa, hash_alg::sha256, dgst))));
  CHECK(must(hsm().destroy_objects(canary_label)) == 3);  // the new pair, and the young half (spared)
}

TEST_CASE("a canary pair destroyed after it was read is read afresh, never signed with another pair's key") {
  // Another broker's prune removed the pair this backend read; a search for the private half by
  // label alone would sign with a newer pair's key, against the old pair's public key: a token
  // that seems to compute wrong.
  std::string old_hex = old_canary_id_hex('1');
  REQUIRE(p11tool("--keypairgen --key-type EC:prime256v1 --label " + std::string(canary_label) + " --id " + old_hex) == 0);
  auto fresh = make_pkcs11_backend();
  must(fresh->open(settings(env().token.label(), env().token.pin())));
  public_key_blob first = must(fresh->public_key(canary_label));  // the old pair
  auto maker = make_pkcs11_backend();
  must(maker->open(settings(env().token.label(), env().token.pin())));
  public_key_blob second = must(maker->generate_key(canary_label, key_type::ecdsa_p256));
  REQUIRE(p11tool("--delete-object --type privkey --id " + old_hex) == 0);
  REQUIRE(p11tool("--delete-object --type pubkey --id " + old_hex) == 0);
  bytes dgst = digest(hash_alg::sha256, b("challenge"));
  CHECK(error_of(fresh->sign(canary_label, sign_mechanism::ecdsa, hash_alg::sha256, dgst)) == ckr_object_not_found);
  public_key_blob now = must(fresh->public_key(canary_label));
  CHECK(now.b == second.b);
  CHECK(now.b != first.b);
  CHECK(verify_digest(now, sign_mechanism::ecdsa, hash_alg::sha256, dgst,
                      must(fresh->sign(canary_label, sign_mechanism::ecdsa, hash_alg::sha256, dgst))));
  CHECK(must(hsm().destroy_objects(canary_label)) == 2);
}

TEST_CASE("duplicates of a key: every backend uses the same one (the smallest CKA_ID)") {
  auto a = make_pkcs11_backend(), c = make_pkcs11_backend();
  must(a->open(settings(env().token.label(), env().token.pin())));
  must(c->open(settings(env().token.label(), env().token.pin())));
  public_key_blob one = must(a->generate_key("twice/v1", key_type::ecdsa_p256));
  public_key_blob two = must(hsm().generate_key("twice/v1", key_type::ecdsa_p256));
  auto fresh = make_pkcs11_backend();
  must(fresh->open(settings(env().token.label(), env().token.pin())));
  public_key_blob seen = must(fresh->public_key("twice/v1"));
  CHECK((seen.b == one.b || seen.b == two.b));
  CHECK(must(c->public_key("twice/v1")).b == seen.b);  // another backend, another search: the same one
  bytes dgst = digest(hash_alg::sha256, b("m"));
  CHECK(verify_digest(seen, sign_mechanism::ecdsa, hash_alg::sha256, dgst,
                      must(fresh->sign("twice/v1", sign_mechanism::ecdsa, hash_alg::sha256, dgst))));
  CHECK(must(hsm().destroy_objects("twice/")) == 4);  // a real key's duplicates are never removed on their own
}

TEST_CASE("unknown labels are ckr_object_not_found") {
  CHECK(error_of(hsm().encrypt("nope", b("x"), {})) == ckr_object_not_found);
  CHECK(error_of(hsm().decrypt("nope", bytes(40), {})) == ckr_object_not_found);
  CHECK(error_of(hsm().sign("nope", sign_mechanism::ecdsa, hash_alg::sha256, bytes(32))) == ckr_object_not_found);
  CHECK(error_of(hsm().hmac("nope", hash_alg::sha256, b("x"))) == ckr_object_not_found);
  CHECK(error_of(hsm().public_key("nope")) == ckr_object_not_found);
}

TEST_CASE("a wrong PIN and an unknown token are reported as such") {
  env();
  auto wrong_pin = make_pkcs11_backend();
  auto r = wrong_pin->open(settings("second", "9999"));
  CHECK(error_of(r) == CKR_PIN_INCORRECT);
  CHECK(r.error().message.find("9999") == std::string::npos);

  auto no_token = make_pkcs11_backend();
  auto t = no_token->open(settings("no-such-token", "1234"));
  CHECK(error_of(t) == ckr_token_not_found);
  CHECK(t.error().message.find("no-such-token") != std::string::npos);

  member_settings by_slot = settings("", "1234");
  by_slot.slot = 987654;
  CHECK(error_of(make_pkcs11_backend()->open(by_slot)) == ckr_token_not_found);

  auto bad_module = make_pkcs11_backend();
  member_settings m = settings("second", "1234");
  m.module = "/nonexistent/libpkcs11.so";
  CHECK(error_of(bad_module->open(m)) == ckr_module_load_failed);

  auto right = make_pkcs11_backend();
  CHECK(must(right->open(settings("second", "1234"))).label == "second");
}

TEST_CASE("random returns the requested length") {
  CHECK(must(hsm().random(0)).empty());
  CHECK(must(hsm().random(1)).size() == 1);
  secure_bytes big = must(hsm().random(200000));
  CHECK(big.size() == 200000);
  CHECK(std::count(big.begin(), big.end(), 0) < 2000);
}
