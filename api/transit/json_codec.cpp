#include "api/transit/json_codec.h"

#include "common/utf8.h"

#include <charconv>
#include <ctime>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/evp.h>

#include "common/base64.h"

namespace hsmb::api {
namespace json = boost::json;

broker_result<json::object> parse_body(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object{};
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return invalid_input("failed to parse JSON input: " + ec.message());
  if (!v.is_object()) return invalid_input("failed to parse JSON input: the body must be a JSON object");
  return std::move(v.as_object());
}

broker_result<std::optional<std::string>> get_string(const json::object& o, std::string_view field) {
  auto* v = o.if_contains(field);
  if (!v || v->is_null()) return std::optional<std::string>{};
  if (!v->is_string()) return invalid_input("field \"" + std::string(field) + "\" must be a string");
  return std::optional<std::string>(std::string(v->as_string()));
}

broker_result<std::optional<std::uint64_t>> get_uint(const json::object& o, std::string_view field) {
  auto* v = o.if_contains(field);
  if (!v || v->is_null()) return std::optional<std::uint64_t>{};
  auto bad = [&] { return invalid_input("field \"" + std::string(field) + "\" must be a non-negative whole number"); };
  if (v->is_uint64()) return std::optional<std::uint64_t>(v->as_uint64());
  if (v->is_int64()) return v->as_int64() < 0 ? bad() : broker_result<std::optional<std::uint64_t>>(std::uint64_t(v->as_int64()));
  if (v->is_double()) {
    double d = v->as_double();
    if (!(d >= 0 && d < 0x1p64) || d != static_cast<double>(static_cast<std::uint64_t>(d))) return bad();  // range first: the cast is UB beyond it
    return std::optional<std::uint64_t>(static_cast<std::uint64_t>(d));
  }
  if (v->is_string()) {
    std::string_view s = v->as_string();
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return bad();
    return std::optional<std::uint64_t>(n);
  }
  return bad();
}

broker_result<std::optional<bool>> get_bool(const json::object& o, std::string_view field) {
  auto* v = o.if_contains(field);
  if (!v || v->is_null()) return std::optional<bool>{};
  if (v->is_bool()) return std::optional<bool>(v->as_bool());
  if (v->is_string() && (v->as_string() == "true" || v->as_string() == "false"))
    return std::optional<bool>(v->as_string() == "true");
  return invalid_input("field \"" + std::string(field) + "\" must be true or false");
}

broker_result<secure_bytes> get_base64(const json::object& o, std::string_view field, bool required) {
  auto* v = o.if_contains(field);
  if (!v || v->is_null()) {
    if (required) return invalid_input("missing field \"" + std::string(field) + "\"");
    return secure_bytes{};
  }
  if (!v->is_string()) return invalid_input("field \"" + std::string(field) + "\" must be a base64 string");
  auto decoded = base64_decode(std::string_view(v->as_string()));
  if (!decoded) return invalid_input("field \"" + std::string(field) + "\" is not valid base64");
  return std::move(*decoded);
}

std::string error_body(std::string_view message) {
  json::object o{{"errors", json::array{json::string(valid_utf8(message))}}};
  return json::serialize(o);
}

std::string data_body(const json::object& data) {
  std::string body = json::serialize(data);
  body.insert(0, R"({"data":)");
  body += '}';
  return body;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

// Vault gives an Ed25519 public key as base64 of its 32 raw bytes, other types as PEM.
std::string vault_public_key(const public_key& pk, key_type type) {
  if (type != key_type::ed25519) return pk.pem;
  unsigned char raw[32];
  std::size_t n = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(pk.pkey.get(), raw, &n) != 1 || n != sizeof raw) return {};
  return base64_encode(byte_view(raw, n));
}

}  // namespace

json::object key_info_json(const key_entry& key) {
  auto& m = key.meta;
  auto type = m.type;
  json::object keys;
  for (auto& [version, created] : m.created) {
    auto name = std::to_string(version);
    if (!is_asymmetric(type)) {
      keys[name] = created;  // Vault gives symmetric versions as their creation time
      continue;
    }
    json::object v{{"creation_time", rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(created)))}};
    if (auto pk = key.public_keys.find(version); pk != key.public_keys.end()) {
      v["public_key"] = vault_public_key(pk->second, type);
      v["name"] = pk->second.name;
      if (type == key_type::ed25519) v["public_key_pem"] = pk->second.pem;  // the broker's extra: PEM as well
    }
    if (auto chain = m.certificate_chains.find(version); chain != m.certificate_chains.end()) {
      v["certificate_chain"] = chain->second;
    }
    keys[name] = std::move(v);
  }
  return json::object{
      {"name", key.name},
      {"type", std::string(to_string(type))},
      {"latest_version", m.latest_version},
      {"min_decryption_version", m.min_decryption_version},
      {"min_encryption_version", m.min_encryption_version},
      {"min_available_version", 0},
      {"deletion_allowed", m.deletion_allowed},
      {"exportable", false},
      {"allow_plaintext_backup", false},
      {"derived", false},
      {"auto_rotate_period", m.auto_rotate_period},
      {"imported_key", false},
      {"supports_encryption", is_symmetric_cipher(type)},
      {"supports_decryption", is_symmetric_cipher(type)},
      {"supports_derivation", false},
      {"supports_signing", is_asymmetric(type)},
      {"keys", std::move(keys)},
  };
}

json::object member_json(const member_snapshot& m) {
  json::value last_error = nullptr;
  if (m.last_error)
    last_error = json::object{{"code", m.last_error->code}, {"message", m.last_error->message}, {"at", rfc3339(m.last_error->at)}};
  json::value token = nullptr;
  if (m.token)
    token = json::object{{"label", m.token->label}, {"manufacturer", m.token->manufacturer}, {"model", m.token->model}, {"serial", m.token->serial}};
  return json::object{
      {"name", m.name},
      {"state", std::string(to_string(m.state))},
      {"state_since", rfc3339(m.state_since)},
      {"in_flight", m.in_flight},
      {"latency_ms", json::object{{"p50", m.p50_ms}, {"p99", m.p99_ms}}},
      {"requests", m.requests},
      {"errors", m.errors},
      {"failovers", m.failovers},
      {"hedges", m.hedges},
      {"worker_restarts", m.worker_restarts},
      {"worker_recycles", m.worker_recycles},
      {"probes", m.probes},
      {"last_error", std::move(last_error)},
      {"token", std::move(token)},
  };
}

}  // namespace hsmb::api
