// Attribute templates: an owning CK_ATTRIBUTE list, and the templates for each key type the broker generates.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
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
  CK_ATTRIBUTE* data() { return attrs_.data(); }
  CK_ULONG size() const { return attrs_.size(); }

 private:
  std::vector<bytes> values_;  // each value's heap buffer stays put when the vector grows
  std::vector<CK_ATTRIBUTE> attrs_;
};

// How to generate one key type: the mechanism, and the secret-key or public+private templates.
struct keygen_spec {
  CK_MECHANISM_TYPE mechanism = 0;
  bool pair = false;
  attribute_list public_template;   // pairs only
  attribute_list secret_template;   // secret key, or the private half of a pair
};
keygen_spec keygen_template(const std::string& label, key_type type);

// DER-encoded CKA_EC_PARAMS of the curves the broker uses.
byte_view ec_params(key_type type);
// Size of a raw public point for known EC_PARAMS (65/97 for P-256/P-384, 32 for Ed25519), 0 if unknown.
std::size_t ec_point_size(byte_view params);

}  // namespace hsmb::pkcs11
