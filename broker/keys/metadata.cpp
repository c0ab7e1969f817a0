#include "broker/keys/metadata.h"

#include <boost/json.hpp>

namespace hsmb {
namespace json = boost::json;

bytes encode_metadata(const key_metadata& m) {
  json::object created;
  for (auto& [v, t] : m.created) created[std::to_string(v)] = t;
  json::object prints;
  for (auto& [v, f] : m.fingerprints) prints[std::to_string(v)] = f;
  json::object o{
      {"format", 1},
      {"type", std::string(to_string(m.type))},
      {"latest_version", m.latest_version},
      {"min_decryption_version", m.min_decryption_version},
      {"min_encryption_version", m.min_encryption_version},
      {"deletion_allowed", m.deletion_allowed},
      {"created", std::move(created)},
      {"fingerprints", std::move(prints)},
      {"revision", m.revision},
      {"deleted", m.deleted},
  };
  if (m.auto_rotate_period) o["auto_rotate_period"] = m.auto_rotate_period;
  if (!m.certificate_chains.empty()) {
    json::object chains;
    for (auto& [v, pem] : m.certificate_chains) chains[std::to_string(v)] = pem;
    o["certificate_chains"] = std::move(chains);
  }  // absent: off, as older records
  auto text = json::serialize(o);
  return bytes(text.begin(), text.end());
}

std::optional<key_metadata> decode_metadata(byte_view data) {
  boost::system::error_code ec;
  auto v = json::parse(as_chars(data), ec);
  if (ec || !v.is_object()) return std::nullopt;
  auto& o = v.as_object();
  key_metadata m;
  try {
    auto type = parse_key_type(std::string_view(o.at("type").as_string()));
    if (!type) return std::nullopt;
    m.type = *type;
    m.latest_version = json::value_to<std::uint32_t>(o.at("latest_version"));
    m.min_decryption_version = json::value_to<std::uint32_t>(o.at("min_decryption_version"));
    m.min_encryption_version = json::value_to<std::uint32_t>(o.at("min_encryption_version"));
    m.deletion_allowed = o.at("deletion_allowed").as_bool();
    for (auto& [k, t] : o.at("created").as_object()) {
      auto at = t.to_number<std::int64_t>();
      // Up to year 9999: later ones overflow a system_clock time point where key info shows them.
      if (at < 0 || at > 253402300799) return std::nullopt;
      m.created[static_cast<std::uint32_t>(std::stoul(std::string(k)))] = at;
    }
    if (auto* prints = o.if_contains("fingerprints"))  // absent in records written before it existed
      for (auto& [k, f] : prints->as_object())
        m.fingerprints[static_cast<std::uint32_t>(std::stoul(std::string(k)))] = std::string(f.as_string());
    if (auto* r = o.if_contains("revision")) m.revision = json::value_to<std::uint64_t>(*r);  // absent before replication
    if (auto* d = o.if_contains("deleted")) m.deleted = d->as_bool();
    if (auto* p = o.if_contains("auto_rotate_period")) m.auto_rotate_period = p->to_number<std::int64_t>();
    if (auto* chains = o.if_contains("certificate_chains"))
      for (auto& [k, pem] : chains->as_object())
        m.certificate_chains[static_cast<std::uint32_t>(std::stoul(std::string(k)))] = std::string(pem.as_string());
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged record is reported by the caller, never trusted
  }
  if (m.auto_rotate_period < 0) return std::nullopt;
  if (m.latest_version == 0 || m.min_decryption_version == 0 || m.min_decryption_version > m.latest_version)
    return std::nullopt;
  return m;
}

bool rotation_due(const key_metadata& m, std::int64_t now) {
  if (m.deleted || m.auto_rotate_period <= 0) return false;
  auto latest = m.created.find(m.latest_version);
  return latest == m.created.end() || now - latest->second >= m.auto_rotate_period;
}

std::string key_object_label(std::string_view name, std::uint32_t version) {
  return "hsmb/" + std::string(name) + "/v" + std::to_string(version);
}

std::string hmac_object_label(std::string_view name, std::uint32_t version, key_type type) {
  auto label = key_object_label(name, version);
  return type == key_type::hmac ? label : label + "/hmac";
}

std::string key_object_prefix(std::string_view name) { return "hsmb/" + std::string(name) + "/"; }

bool valid_key_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

}  // namespace hsmb
