#include "api/audit/redaction.h"

#include <array>
#include <charconv>
#include <utility>

#include <boost/json/serialize.hpp>

#include "common/log_line.h"

namespace hsmb::api::audit {
namespace json = boost::json;
namespace {

void append_string(std::string& out, std::string_view s) {
  out += '"';
  logline::append_json_escaped(out, s);
  out += '"';
}

void append_secret(std::string& out, const json::value& v, const audit_key& key) {
  if (v.is_null()) {
    out += "null";
    return;
  }
  out += '"';  // a hash needs no escaping
  if (auto* s = v.if_string()) key.append_hash(out, *s);
  else key.append_hash(out, json::serialize(v));
  out += '"';
}

}  // namespace

bool is_secret_field(std::string_view name) {
  static constexpr std::array<std::string_view, 12> secret = {
      "plaintext", "ciphertext", "input", "signature", "hmac",  "context",      "associated_data",
      "random_bytes", "sum",     "token", "client_token", "accessor"};
  for (auto s : secret)
    if (name == s) return true;
  return false;
}

void append_redacted(std::string& out, const json::object& o, const audit_key& key) {
  out += '{';
  bool first = true;
  for (auto& field : o) {
    if (!std::exchange(first, false)) out += ',';
    append_string(out, field.key());
    out += ':';
    if (is_secret_field(field.key())) append_secret(out, field.value(), key);
    else append_redacted(out, field.value(), key);
  }
  out += '}';
}

void append_redacted(std::string& out, const json::value& v, const audit_key& key) {
  if (auto* o = v.if_object()) {
    append_redacted(out, *o, key);
  } else if (auto* a = v.if_array()) {
    out += '[';
    bool first = true;
    for (auto& item : *a) {
      if (!std::exchange(first, false)) out += ',';
      append_redacted(out, item, key);
    }
    out += ']';
  } else if (auto* s = v.if_string()) {
    append_string(out, *s);
  } else if (v.is_int64() || v.is_uint64()) {
    char digits[24];
    auto end = v.is_int64() ? std::to_chars(digits, digits + sizeof digits, v.get_int64()).ptr
                            : std::to_chars(digits, digits + sizeof digits, v.get_uint64()).ptr;
    out.append(digits, end);
  } else if (v.is_bool()) {
    out += v.get_bool() ? "true" : "false";
  } else if (v.is_null()) {
    out += "null";
  } else {
    out += json::serialize(v);  // a double, as Boost.JSON writes it
  }
}

}  // namespace hsmb::api::audit
