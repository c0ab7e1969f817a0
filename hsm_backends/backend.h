// The operations the broker needs from one HSM. Implemented by pkcs11/pkcs11_backend and run
// inside a worker process; the broker reaches it only through the worker protocol (wire/).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "hsm_backends/hsm_error.h"
#include "hsm_backends/key_types.h"

namespace hsmb {

// How to reach one member's token. `pin` is a secret.
struct member_settings {
  std::string module;                 // path of the PKCS#11 library
  std::string token_label;            // chosen by label, or
  std::optional<std::uint64_t> slot;  // by slot id
  secure_string pin;
  std::uint32_t sessions = 4;
  // Only for the cluster-key ceremony (hsm-broker --enroll), never in a serving worker.
  secure_string so_pin;
};

struct token_description {
  std::string label, manufacturer, model, serial;
  // CKM_* the token offers, as its module reports them (a network client may report fewer than
  // the HSM has: p11-kit's RPC drops mechanisms whose parameters it cannot carry).
  std::vector<std::uint64_t> mechanisms;
};

// Public half of an asymmetric key, as the token stores it.
struct public_key_blob {
  enum class kind : std::uint8_t { none = 0, ec = 1, eddsa = 2, rsa = 3 };
  kind k = kind::none;
  bytes a;  // ec/eddsa: CKA_EC_PARAMS (DER); rsa: modulus (big-endian)
  bytes b;  // ec: uncompressed point (04||X||Y); eddsa: 32-byte key; rsa: public exponent
};

// One key object (secret key, or private key with its public half) wrapped under the cluster
// key, as it travels from one member to another. `wrapped` reveals nothing without that key.
struct wrapped_key {
  key_type type = key_type::aes256_gcm96;
  bytes wrapped;        // CKM_AES_KEY_WRAP (secret keys) or CKM_AES_KEY_WRAP_PAD (private keys)
  public_key_blob pub;  // asymmetric keys: the public half, recreated as a public object
};

// The key pair each member signs with in its known-answer check (broker/known_answer.h). Made by
// whichever broker finds none, so brokers starting together on a fresh token may each make one:
// public_key(canary_label) keeps the whole pair with the smallest CKA_ID, which every broker
// uses, and removes the rest (other pairs, stray halves, pairs that cannot be told apart).
inline constexpr const char* canary_label = "hsmb-canary";

// A key-metadata record: a data object on the token, owned by the broker.
struct metadata_record {
  std::string name;
  bytes value;
};

// Every call is thread-safe; the implementation keeps a pool of `sessions` sessions.
class hsm_backend {
 public:
  virtual ~hsm_backend() = default;

  virtual hsm_result<token_description> open(const member_settings& settings) = 0;
  // Cheap liveness check that costs the HSM no crypto (C_GetSessionInfo or similar).
  virtual hsm_result<void> probe() = 0;
  virtual hsm_result<secure_bytes> random(std::size_t n) = 0;

  // Generates a sensitive key (pair) whose objects carry `label` as CKA_LABEL and CKA_ID.
  // Fails with CKR_ATTRIBUTE_VALUE_INVALID-class errors for bad input; an existing label is not
  // checked here (the broker owns versioning).
  virtual hsm_result<public_key_blob> generate_key(const std::string& label, key_type type) = 0;
  virtual hsm_result<public_key_blob> public_key(const std::string& label) = 0;
  // Destroys every object whose label starts with `label_prefix`; returns how many.
  virtual hsm_result<std::uint32_t> destroy_objects(const std::string& label_prefix) = 0;

  virtual hsm_result<std::vector<metadata_record>> list_metadata() = 0;
  virtual hsm_result<void> put_metadata(const std::string& name, byte_view value) = 0;
  virtual hsm_result<void> delete_metadata(const std::string& name) = 0;

  // AES-GCM with a 96-bit nonce from the HSM's RNG; returns nonce(12) || ciphertext || tag(16).
  virtual hsm_result<bytes> encrypt(const std::string& label, byte_view plaintext, byte_view aad) = 0;
  // Input as encrypt returns it. A failed tag check is CKR_ENCRYPTED_DATA_INVALID.
  virtual hsm_result<secure_bytes> decrypt(const std::string& label, byte_view sealed, byte_view aad) = 0;
  // `salt`: RSA-PSS's salt length in bytes (pss_salt_hash_length: the digest's); other mechanisms ignore it.
  virtual hsm_result<bytes> sign(const std::string& label, sign_mechanism mech, hash_alg hash, byte_view data,
                                 std::uint32_t salt = pss_salt_hash_length) = 0;
  virtual hsm_result<bytes> hmac(const std::string& label, hash_alg hash, byte_view data) = 0;
  // A key check value of a secret key (aes*, hmac): equal for copies of one key, different for
  // different keys, and revealing nothing else. Asymmetric keys are compared by public key.
  virtual hsm_result<bytes> key_check_value(const std::string& label, key_type type) = 0;

  // ---- replication (see docs/replication.md) ----
  // Wraps the key `label` (type `type`) under the cluster key; the key itself stays in the HSM.
  virtual hsm_result<wrapped_key> export_key(const std::string& label, key_type type) = 0;
  // Unwraps `key` under the cluster key into token objects named `label`, with the same
  // protection as generated keys. An existing object of that label is an error.
  virtual hsm_result<void> import_key(const std::string& label, const wrapped_key& key) = 0;
  // The cluster key's check value (equal on every member that holds the same cluster key);
  // ckr_object_not_found when this token has none.
  virtual hsm_result<bytes> cluster_key_check() = 0;

  // ---- the cluster-key ceremony: needs member_settings::so_pin ----
  // Generates a new cluster key on this token (trusted, wrap/unwrap only, never extractable in
  // plaintext). Fails if one exists.
  virtual hsm_result<void> create_cluster_key() = 0;
  // An RSA-3072 transport key pair as SO session objects; returns the public half (kind rsa).
  virtual hsm_result<public_key_blob> create_transport_key() = 0;
  // The cluster key wrapped (RSA-OAEP) under another member's transport public key.
  virtual hsm_result<bytes> export_cluster_key(const public_key_blob& transport) = 0;
  // Unwraps a cluster key sent by export_cluster_key under this token's transport key.
  virtual hsm_result<void> import_cluster_key(byte_view wrapped) = 0;
};

}  // namespace hsmb
