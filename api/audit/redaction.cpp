#include "api/audit/redaction.h"

#include <array>

#include <boost/json/serialize.hpp>

namespace hsmb::api::audit {
namespace json = boost::json;

bool is_secret_field(std::string_view name) {
  static constexpr std::array<std::string_view, 12> secret = {
      "plaintext", "ciphertext", "input", "signature", "hmac",  "context",      "associated_data",
      "random_bytes", "sum",     "token", "client_token", "accessor"};
  for (auto s : secret)
    if (name == s) return true;
  return false;
}

void redact(json::value& v, const audit_key& key) {
  if (auto* o = v.if_object()) {
    for (auto& field : *o) {
      if (!is_secret_field(field.key())) {
        redact(field.value(), key);
      } else if (auto* s = field.value().if_string()) {
        field.value() = key.hash(*s);
      } else if (!field.value().is_null()) {
        field.value() = key.hash(json::serialize(field.value()));
      }
    }
  } else if (auto* a = v.if_array()) {
    for (auto& item : *a) redact(item, key);
  }
}

}  // namespace hsmb::api::audit
