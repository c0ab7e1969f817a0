// The cluster-key ceremony and key copies between two real SoftHSM2 tokens, in-process: what
// replication relies on, including what an attacker holding only the user PIN cannot do.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <memory>

#include "hsm_backends/pkcs11/module.h"
#include "hsm_backends/pkcs11/pkcs11_backend.h"
#include "hsm_backends/pkcs11/templates.h"
#include "tests/lib/must.h"
#include "tests/lib/softhsm_token.h"

using namespace hsmb;

namespace {

using test::must;

// Two tokens, each with a ceremony-mode backend (user and SO PIN), the cluster key on both.
struct cluster {
  test::softhsm_token tokens{"alpha"};
  std::unique_ptr<hsm_backend> a, b;

  cluster() {
    tokens.add_token("beta");
    tokens.add_token("gamma");  // never enrolled; SoftHSM lists tokens as of C_Initialize
    tokens.use_conf();
    a = open("alpha");
    b = open("beta");
    must(a->create_cluster_key());
    auto transport = must(b->create_transport_key());
    auto carried = must(a->export_cluster_key(transport));
    must(b->import_cluster_key(carried));
  }
  std::unique_ptr<hsm_backend> open(const std::string& label) {
    member_settings s;
    s.module = test::softhsm_token::module_path();
    s.token_label = label;
    s.pin = tokens.pin().c_str();
    s.so_pin = tokens.so_pin().c_str();
    s.sessions = 1;
    auto be = make_pkcs11_backend();
    must(be->open(s));
    return be;
  }
};

cluster& env() {
  static cluster c;
  return c;
}

void copy(const std::string& label, key_type type) {
  auto w = must(env().a->export_key(label, type));
  must(env().b->import_key(label, w));
}

}  // namespace

TEST_CASE("both members hold the same cluster key after the ceremony") {
  auto& c = env();
  auto on_a = must(c.a->cluster_key_check());
  CHECK(on_a.size() == 40);
  CHECK(on_a == must(c.b->cluster_key_check()));
  CHECK(c.a->create_cluster_key().error().ckr == ckr_object_exists);
}

TEST_CASE("an AES key copied to the other member decrypts what the first encrypted") {
  must(env().a->generate_key("t/aes/v1", key_type::aes256_gcm96));
  copy("t/aes/v1", key_type::aes256_gcm96);
  auto sealed = must(env().a->encrypt("t/aes/v1", as_bytes(std::string_view("payload")), {}));
  auto plain = must(env().b->decrypt("t/aes/v1", sealed, {}));
  CHECK(std::string(plain.begin(), plain.end()) == "payload");
  CHECK(must(env().a->key_check_value("t/aes/v1", key_type::aes256_gcm96)) ==
        must(env().b->key_check_value("t/aes/v1", key_type::aes256_gcm96)));
}

TEST_CASE("copies of HMAC, ECDSA and RSA keys are the same keys") {
  auto& c = env();
  must(c.a->generate_key("t/mac/v1", key_type::hmac));
  copy("t/mac/v1", key_type::hmac);
  auto data = as_bytes(std::string_view("message"));
  CHECK(must(c.a->hmac("t/mac/v1", hash_alg::sha256, data)) == must(c.b->hmac("t/mac/v1", hash_alg::sha256, data)));
  for (auto type : {key_type::ecdsa_p256, key_type::ecdsa_p384, key_type::rsa_2048}) {
    CAPTURE(to_string(type));
    std::string label = "t/" + std::string(to_string(type)) + "/v1";
    auto pub = must(c.a->generate_key(label, type));
    copy(label, type);
    auto copied = must(c.b->public_key(label));
    CHECK(copied.a == pub.a);
    CHECK(copied.b == pub.b);
    bytes digest(32, 7);
    auto mech = is_rsa(type) ? sign_mechanism::rsa_pss : sign_mechanism::ecdsa;
    CHECK(must(c.b->sign(label, mech, hash_alg::sha256, digest)).size() > 0);
  }
}

TEST_CASE("SoftHSM2 cannot wrap Ed25519 keys: a clear caller-class error, not a device failure") {
  must(env().a->generate_key("t/ed/v1", key_type::ed25519));
  auto w = env().a->export_key("t/ed/v1", key_type::ed25519);
  REQUIRE_FALSE(w);
  CHECK(w.error().ckr == CKR_KEY_NOT_WRAPPABLE);
  CHECK_FALSE(is_device_error(w.error().ckr));
}

TEST_CASE("an import never overwrites an existing key") {
  auto& c = env();
  must(c.a->generate_key("t/dup/v1", key_type::aes256_gcm96));
  copy("t/dup/v1", key_type::aes256_gcm96);
  auto w = must(c.a->export_key("t/dup/v1", key_type::aes256_gcm96));
  auto again = c.b->import_key("t/dup/v1", w);
  REQUIRE_FALSE(again);
  CHECK(again.error().ckr == ckr_object_exists);
}

TEST_CASE("a token without the cluster key reports it instead of failing as a device") {
  auto g = env().open("gamma");
  auto r = g->cluster_key_check();
  REQUIRE_FALSE(r);
  CHECK(r.error().ckr == ckr_no_cluster_key);
  CHECK_FALSE(is_device_error(ckr_no_cluster_key));
  auto w = must(env().a->export_key("t/aes/v1", key_type::aes256_gcm96));
  CHECK(g->import_key("t/aes/v1", w).error().ckr == ckr_no_cluster_key);
}

TEST_CASE("with only the user PIN, a wrapped key cannot be unwrapped as readable, nor wrapped by an own key") {
  auto& c = env();
  auto mod = must(pkcs11::module::acquire(test::softhsm_token::module_path()));
  CK_FUNCTION_LIST* fn = mod->fn();
  // The backend's session shares this process's login (user) on token "alpha".
  CK_ULONG n = 8;
  CK_SLOT_ID slots[8];
  REQUIRE(fn->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK);
  CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
  for (CK_ULONG i = 0; i < n && s == CK_INVALID_HANDLE; ++i) {
    CK_TOKEN_INFO info{};
    fn->C_GetTokenInfo(slots[i], &info);
    if (std::string_view(reinterpret_cast<char*>(info.label), 5) == "alpha")
      REQUIRE(fn->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s) == CKR_OK);
  }
  REQUIRE(s != CK_INVALID_HANDLE);
  auto find = [&](std::string_view label, CK_OBJECT_CLASS cls) {
    pkcs11::attribute_list q;
    q.add_ulong(CKA_CLASS, cls).add(CKA_LABEL, label);
    auto found = must(pkcs11::find_objects(fn, s, q));
    REQUIRE(found.size() == 1);
    return found[0];
  };
  CK_OBJECT_HANDLE cluster = find(pkcs11::cluster_key_label, CKO_SECRET_KEY);
  CK_OBJECT_HANDLE app = find("t/aes/v1", CKO_SECRET_KEY);

  // The unwrap template keeps everything the cluster key unwraps sensitive.
  auto w = must(c.a->export_key("t/aes/v1", key_type::aes256_gcm96));
  pkcs11::attribute_list readable;
  readable.add_ulong(CKA_CLASS, CKO_SECRET_KEY).add_ulong(CKA_KEY_TYPE, CKK_AES).add_bool(CKA_TOKEN, false)
      .add_bool(CKA_SENSITIVE, false).add_bool(CKA_EXTRACTABLE, true);
  CK_MECHANISM kw{CKM_AES_KEY_WRAP, nullptr, 0};
  CK_OBJECT_HANDLE out = CK_INVALID_HANDLE;
  CHECK(fn->C_UnwrapKey(s, &kw, cluster, w.wrapped.data(), w.wrapped.size(), readable.data(), readable.size(), &out) != CKR_OK);

  // An own (untrusted) wrapping key cannot wrap an application key.
  pkcs11::attribute_list own;
  own.add_ulong(CKA_CLASS, CKO_SECRET_KEY).add_ulong(CKA_KEY_TYPE, CKK_AES).add_ulong(CKA_VALUE_LEN, 32)
      .add_bool(CKA_TOKEN, false).add_bool(CKA_WRAP, true);
  CK_MECHANISM gen{CKM_AES_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE mine = CK_INVALID_HANDLE;
  REQUIRE(fn->C_GenerateKey(s, &gen, own.data(), own.size(), &mine) == CKR_OK);
  CK_ULONG len = 0;
  CHECK(fn->C_WrapKey(s, &kw, mine, app, nullptr, &len) == CKR_KEY_NOT_WRAPPABLE);

  // Nor can the user make a key trusted, or read the cluster key.
  pkcs11::attribute_list trusted;
  trusted.add_bool(CKA_TRUSTED, true);
  CHECK(fn->C_SetAttributeValue(s, mine, trusted.data(), trusted.size()) != CKR_OK);
  CHECK(fn->C_WrapKey(s, &kw, mine, cluster, nullptr, &len) == CKR_KEY_NOT_WRAPPABLE);
  fn->C_CloseSession(s);
}
