// Attribute templates: an owning CK_ATTRIBUTE list, and the templates for each key type the broker generates.
#pragma once

#include <chrono>
#include <optional>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "hsm_backends/backend.h"
#include "hsm_backends/key_types.h"
#include "hsm_backends/pkcs11/p11.h"

namespace hsmb::pkcs11 {

// CK_ATTRIBUTE array whose values it owns, so templates can be built by value and passed to C_*.
class attribute_list {
 public:
  attribute_list() = default;
  attribute_list(attribute_list&&) = default;  // moves keep the values' buffers, so pointers stay valid
  attribute_list& operator=(attribute_list&&) = default;
  attribute_list(const attribute_list&) = delete;
  attribute_list& operator=(const attribute_list&) = delete;

  attribute_list& add(CK_ATTRIBUTE_TYPE type, byte_view value);
  attribute_list& add(CK_ATTRIBUTE_TYPE type, std::string_view value) { return add(type, as_bytes(value)); }
  attribute_list& add_bool(CK_ATTRIBUTE_TYPE type, bool value);
  attribute_list& add_ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value);
  // Replaces the value of `type` (or adds it).
  attribute_list& set(CK_ATTRIBUTE_TYPE type, byte_view value);
  attribute_list& set(CK_ATTRIBUTE_TYPE type, std::string_view value) { return set(type, as_bytes(value)); }
  // An attribute whose value is itself a template (CKA_UNWRAP_TEMPLATE).
  attribute_list& add_template(CK_ATTRIBUTE_TYPE type, attribute_list inner);
  CK_ATTRIBUTE* data() { return attrs_.data(); }
  CK_ULONG size() const { return attrs_.size(); }

 private:
  std::vector<bytes> values_;  // each value's heap buffer stays put when the vector grows
  std::vector<CK_ATTRIBUTE> attrs_;
  std::vector<std::unique_ptr<attribute_list>> nested_;
};

// How to generate one key type: the mechanism, and the secret-key or public+private templates.
struct keygen_spec {
  CK_MECHANISM_TYPE mechanism = 0;
  bool pair = false;
  attribute_list public_template;   // pairs only
  attribute_list secret_template;   // secret key, or the private half of a pair
};
// Every key object gets a CKA_ID of its own, "<label>#<creation time, µs, 16 hex><8 random hex>",
// the same on both halves of a pair: several brokers sharing a token may each make an object of
// one label (the canary on a fresh token), and the smallest CKA_ID, the oldest, is the one every
// broker uses, with its own other half; one made later never displaces it.
std::string unique_object_id(const std::string& label);
// When an object with that CKA_ID was made (unique_object_id's form); nullopt for other IDs.
std::optional<std::chrono::system_clock::time_point> object_id_time(byte_view id);
keygen_spec keygen_template(const std::string& label, key_type type);
// The secret or private key of `type` as C_UnwrapKey creates it on a member receiving a copy:
// the same attributes as a generated key (sensitive, wrap-with-trusted), less the lengths.
attribute_list unwrap_template(const std::string& label, key_type type, const std::string& id);

// ---- replication (cluster_key.cpp) ----
// The public half of a copied key pair, as generated: on the token, private, verify only.
attribute_list public_import_template(const std::string& label, key_type type, const public_key_blob& pub,
                                      const std::string& id);
// The cluster key while the SO holds it: a public session object (only the SO may set
// CKA_TRUSTED, and only on public objects), wrap/unwrap only, with an unwrap template that keeps
// every key it unwraps sensitive. `generate`: with CKA_VALUE_LEN, for C_GenerateKey.
attribute_list cluster_key_session_template(bool generate);
// The user's C_CopyObject of it to a private token object.
attribute_list cluster_key_copy_template();
// The SO's transport key pair for carrying the cluster key in (RSA-3072, session objects).
keygen_spec transport_key_template();
// Another member's transport public key, created trusted by the SO so it may wrap the cluster key.
attribute_list trusted_transport_template(const public_key_blob& pub);
inline constexpr std::string_view cluster_key_label = "hsmb-cluster-key";

// DER-encoded CKA_EC_PARAMS of the curves the broker uses.
byte_view ec_params(key_type type);
// Size of a raw public point for known EC_PARAMS (65/97 for P-256/P-384, 32 for Ed25519), 0 if unknown.
std::size_t ec_point_size(byte_view params);

}  // namespace hsmb::pkcs11
