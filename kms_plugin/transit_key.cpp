#include "kms_plugin/transit_key.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/base64.h"

namespace hsmb::kms {
namespace {

namespace json = boost::json;

// The broker's {"errors": [...]} as one line, or the body when it is something else.
std::string error_text(const client::reply& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  std::string out;
  if (!ec && v.is_object())
    if (auto* errors = v.as_object().if_contains("errors"); errors && errors->is_array())
      for (auto& e : errors->as_array())
        if (e.is_string()) out += (out.empty() ? "" : "; ") + std::string(e.as_string());
  if (out.empty()) out = r.body.substr(0, 200);
  return "broker: " + std::to_string(r.status) + " " + out;
}

failure status_failure(const client::reply& r) {
  failure_kind kind = failure_kind::internal;
  if (r.status == 400) kind = failure_kind::invalid;
  if (r.status == 403) kind = failure_kind::denied;
  if (r.status == 404) kind = failure_kind::not_found;
  if (r.status == 503 || r.status == 429) kind = failure_kind::unavailable;
  return {kind, error_text(r)};
}

// data.<field> of a 200 answer as a string.
result<std::string> data_string(const client::reply& r, std::string_view field) {
  if (r.status != 200) return std::unexpected(status_failure(r));
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (!ec && v.is_object())
    if (auto* data = v.as_object().if_contains("data"); data && data->is_object())
      if (auto* f = data->as_object().if_contains(field); f && f->is_string()) return std::string(f->as_string());
  return std::unexpected(failure{failure_kind::internal, "broker: no data." + std::string(field) + " in the answer"});
}

std::uint32_t as_version(const json::value& v) {
  auto n = v.is_int64() ? v.as_int64() : v.is_uint64() ? static_cast<std::int64_t>(v.as_uint64()) : 0;
  return n > 0 && n <= UINT32_MAX ? static_cast<std::uint32_t>(n) : 0;
}

}  // namespace

bool valid_key_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '.' || c == '-';
  });
}

transit_key::transit_key(broker_pool& broker, std::string name) : broker_(broker), name_(std::move(name)) {}

result<std::string> transit_key::encrypt(byte_view plaintext, clock::time_point deadline,
                                         broker_pool::on_unavailable policy) {
  // The body carries the plaintext (base64): a wiped string, as every copy of it.
  secure_string body;
  std::string encoded = base64_encode(plaintext);
  body.append(R"({"plaintext":")").append(encoded).append(R"("})");
  secure_wipe(encoded.data(), encoded.size());
  auto r = broker_.call("POST", "/v1/transit/encrypt/" + name_, body, deadline, policy);
  if (!r) return std::unexpected(r.error());
  return data_string(*r, "ciphertext");
}

result<secure_bytes> transit_key::decrypt(std::string_view ciphertext, clock::time_point deadline) {
  std::string body = json::serialize(json::object{{"ciphertext", ciphertext}});
  auto r = broker_.call("POST", "/v1/transit/decrypt/" + name_, body, deadline);
  if (!r) return std::unexpected(r.error());
  auto text = data_string(*r, "plaintext");
  secure_wipe(r->body.data(), r->body.size());
  if (!text) return std::unexpected(text.error());
  auto plain = base64_decode(*text);
  secure_wipe(text->data(), text->size());
  if (!plain) return std::unexpected(failure{failure_kind::internal, "broker: plaintext is not base64"});
  return std::move(*plain);
}

result<key_versions> transit_key::read(clock::time_point deadline) {
  auto r = broker_.call("GET", "/v1/transit/keys/" + name_, {}, deadline);
  if (!r) return std::unexpected(r.error());
  if (r->status != 200) return std::unexpected(status_failure(*r));
  auto bad = [] { return std::unexpected(failure{failure_kind::internal, "broker: key info without type or versions"}); };
  boost::system::error_code ec;
  auto v = json::parse(r->body, ec);
  if (ec || !v.is_object()) return bad();
  auto* data = v.as_object().if_contains("data");
  if (!data || !data->is_object()) return bad();
  auto& d = data->as_object();
  auto* type = d.if_contains("type");
  auto* keys = d.if_contains("keys");
  auto* latest = d.if_contains("latest_version");
  auto* min_dec = d.if_contains("min_decryption_version");
  if (!type || !type->is_string() || !keys || !keys->is_object() || !latest || !min_dec) return bad();
  key_versions out{.type = std::string(type->as_string()), .latest = as_version(*latest), .min_decryption = as_version(*min_dec)};
  for (auto& [k, created] : keys->as_object()) {
    std::uint32_t version = 0;
    auto [end, err] = std::from_chars(k.data(), k.data() + k.size(), version);
    if (err != std::errc{} || end != k.data() + k.size() || !created.is_number()) return bad();
    out.created[version] = created.is_int64() ? created.as_int64() : static_cast<std::int64_t>(created.to_number<double>());
  }
  return out;
}

}  // namespace hsmb::kms
