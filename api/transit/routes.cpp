#include "api/transit/routes.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/json/serialize.hpp>

#include "api/auth/authenticator.h"
#include "api/metrics/prometheus.h"
#include "api/transit/http_status.h"
#include "api/transit/json_codec.h"
#include "api/transit/openapi.h"
#include "broker/keys/certificate.h"
#include "broker/keys/signature.h"
#include "broker/keys/versioned_value.h"
#include "common/base64.h"
#include "common/duration.h"

namespace hsmb::api {
namespace json = boost::json;
using boost::asio::awaitable;

namespace {

constexpr std::string_view broker_version = "0.1.0";
constexpr std::size_t max_random_bytes = 1u << 20;

response error(unsigned status, std::string_view message) { return {status, error_body(message)}; }
response error(const broker_error& e) { return error(http_status(e.kind), e.message); }
response with_data(unsigned status, json::object data) {
  auto kept = std::make_shared<const json::object>(std::move(data));  // moved, not copied
  response r{status, data_body(*kept)};
  r.data = std::move(kept);
  return r;
}
response ok(json::object data) { return with_data(200, std::move(data)); }

bool is_write(std::string_view m) { return (method_bit(m) & methods::write) != 0; }

// A batch item's answer or error, plus Vault's status rule: all failed → the first error's status;
// some failed → 400, or the request's partial_failure_response_code.
struct batch_results {
  json::array items;
  std::optional<broker_error> first_error;
  std::size_t failures = 0;
  unsigned partial_status = 400;

  void add(const json::object& input, broker_result<json::object> r) {
    json::object item = r ? std::move(*r) : json::object{{"error", r.error().message}};
    if (!r) {
      ++failures;
      if (!first_error) first_error = r.error();
    }
    if (auto* ref = input.if_contains("reference")) item["reference"] = *ref;
    items.push_back(std::move(item));
  }
  response finish() {
    if (!items.empty() && failures == items.size()) {
      return with_data(http_status(first_error->kind), json::object{{"batch_results", std::move(items)}});
    }
    if (failures > 0) return with_data(partial_status, json::object{{"batch_results", std::move(items)}});
    return ok(json::object{{"batch_results", std::move(items)}});
  }
};

using item_handler = std::function<awaitable<broker_result<json::object>>(const json::object&)>;

// Runs one item or every entry of batch_input (at most `max_items`) through `handle`. A batch
// whose client went away stops: nobody would read the rest of its HSM calls' answers.
awaitable<response> single_or_batch(const request& req, std::size_t max_items, const json::object& body,
                                    const item_handler& handle) {
  auto* batch = body.if_contains("batch_input");
  if (!batch || batch->is_null()) {
    auto r = co_await handle(body);
    co_return r ? ok(std::move(*r)) : error(r.error());
  }
  if (!batch->is_array()) co_return error(400, "batch_input must be a list of objects");
  if (batch->as_array().empty()) co_return error(400, "batch_input must not be empty");
  if (batch->as_array().size() > max_items)
    co_return error(400, "batch_input has " + std::to_string(batch->as_array().size()) + " entries; at most " +
                             std::to_string(max_items) + " are taken (limits.max_batch_items)");
  batch_results results;
  auto partial = get_uint(body, "partial_failure_response_code");
  if (!partial) co_return error(partial.error());
  if (*partial) {
    if (**partial < 200 || **partial > 599) co_return error(400, "partial_failure_response_code must be an HTTP status (200-599)");
    results.partial_status = static_cast<unsigned>(**partial);
  }
  std::size_t done = 0;
  for (auto& item : batch->as_array()) {
    if (++done % 8 == 0 && req.client_gone && req.client_gone()) {
      spdlog::info("{} {}: client gone after {} of {} batch items; the rest are not run", req.method, req.target,
                   done - 1, batch->as_array().size());
      co_return error(499, "client closed the connection");
    }
    if (!item.is_object()) {
      results.add(json::object{}, invalid_input("each batch_input entry must be an object"));
      continue;
    }
    auto result = co_await handle(item.as_object());
    results.add(item.as_object(), std::move(result));
  }
  co_return results.finish();
}

broker_result<std::optional<std::uint32_t>> get_version(const json::object& o) {
  auto v = get_uint(o, "key_version");
  if (!v) return std::unexpected(v.error());
  if (*v && **v > 0x7fffffffu) return invalid_input("key_version is too large");
  return *v ? std::optional<std::uint32_t>(static_cast<std::uint32_t>(**v)) : std::nullopt;
}

// Vault's salt_length: "auto" (the largest salt when signing; any when verifying), "hash" (the
// digest's length), or a number of bytes, as a string or a JSON number. As in Go's crypto/rsa,
// which Vault uses, 0 means auto and -1 hash.
broker_result<std::uint32_t> parse_salt_length(const json::object& o) {
  auto* v = o.if_contains("salt_length");
  if (!v || v->is_null()) return pss_salt_auto;
  std::string text;
  if (v->is_string()) text = v->as_string();
  else if (v->is_int64()) text = std::to_string(v->as_int64());
  else if (v->is_uint64()) text = std::to_string(v->as_uint64());
  else return invalid_input("salt_length must be auto, hash or a number of bytes");
  if (text == "auto" || text == "0") return pss_salt_auto;
  if (text == "hash" || text == "-1") return pss_salt_hash_length;
  json::object tmp{{"salt_length", text}};
  auto n = get_uint(tmp, "salt_length");
  if (!n || !*n || **n > 0xffff) return invalid_input("salt_length must be auto, hash or a number of bytes, not \"" + text + "\"");
  return static_cast<std::uint32_t>(**n);
}

// Vault's order: the URL, then hash_algorithm, then algorithm (hmac's name for it, and an older
// alias on sign and verify), then SHA-256.
broker_result<sign_options> parse_sign_options(const json::object& o, std::string_view path_hash) {
  sign_options s;
  auto hash_name = get_string(o, "hash_algorithm");
  if (!hash_name) return std::unexpected(hash_name.error());
  auto alias = get_string(o, "algorithm");
  if (!alias) return std::unexpected(alias.error());
  std::string_view name = !path_hash.empty() ? path_hash
                          : *hash_name      ? std::string_view(**hash_name)
                          : *alias          ? std::string_view(**alias)
                                            : "sha2-256";
  auto hash = parse_hash_alg(name);
  if (!hash) return invalid_input("unsupported hash algorithm \"" + std::string(name) + "\"");
  s.hash = *hash;
  auto pre = get_bool(o, "prehashed");
  if (!pre) return std::unexpected(pre.error());
  s.prehashed = pre->value_or(false);
  auto alg = get_string(o, "signature_algorithm");
  if (!alg) return std::unexpected(alg.error());
  if (*alg && **alg != "pss" && **alg != "pkcs1v15") return invalid_input("signature_algorithm must be pss or pkcs1v15");
  s.pkcs1v15 = *alg && **alg == "pkcs1v15";
  auto marshal = get_string(o, "marshaling_algorithm");
  if (!marshal) return std::unexpected(marshal.error());
  if (*marshal && **marshal != "asn1" && **marshal != "jws") return invalid_input("marshaling_algorithm must be asn1 or jws");
  s.jws = *marshal && **marshal == "jws";
  auto salt = parse_salt_length(o);
  if (!salt) return std::unexpected(salt.error());
  s.salt = *salt;
  auto v = get_version(o);
  if (!v) return std::unexpected(v.error());
  s.key_version = *v;
  return s;
}

// The fields decrypt and rewrap read: a ciphertext and its associated data.
struct sealed_input {
  std::string ciphertext;
  secure_bytes aad;
};

broker_result<sealed_input> get_sealed_input(const json::object& in) {
  auto ct = get_string(in, "ciphertext");
  if (!ct) return std::unexpected(ct.error());
  if (!*ct) return invalid_input("missing field \"ciphertext\"");
  auto aad = get_base64(in, "associated_data", false);
  if (!aad) return std::unexpected(aad.error());
  return sealed_input{std::move(**ct), std::move(*aad)};
}

json::object versioned_json(std::string_view field, const versioned_output& out) {
  return json::object{{field, out.text}, {"key_version", out.version}};
}

// What a handler gets: the services, the request, its path's named segments and its body.
struct call {
  key_service& keys;
  member_pool& pool;
  std::size_t max_batch_items;
  audit::audit_log* audit;
  const request& req;
  const path_params& params;
  const json::object& body;  // {} unless the route reads a JSON body and the method is POST or PUT
  const caller& who;
  routes& owner;
};
using handler = awaitable<response> (*)(const call&);

awaitable<response> metrics(const call& c) {
  co_return response{200, c.owner.metrics_text(), "text/plain; version=0.0.4"};
}

awaitable<response> health(const call& c) {
  auto serving = c.pool.serving_count();
  auto now = unix_seconds_now();
  json::object body{{"initialized", true}, {"sealed", false}, {"standby", false}, {"performance_standby", false},
                    {"version", std::string(broker_version)}, {"server_time_utc", now}, {"cluster_name", "hsm-broker"},
                    {"members", json::object{{"serving", serving}, {"total", c.pool.size()}}}};
  co_return response{serving > 0 ? 200u : 503u, json::serialize(body)};
}

// Vault's seal status, for clients that check it before anything else (node-vault's schema
// requires sealed, t, n and progress): the broker has no seal; HSMs hold the keys.
awaitable<response> seal_status(const call&) {
  json::object body{{"type", "shamir"}, {"initialized", true}, {"sealed", false}, {"t", 1}, {"n", 1},
                    {"progress", 0}, {"nonce", ""}, {"version", std::string(broker_version)}, {"migration", false},
                    {"cluster_name", "hsm-broker"}, {"cluster_id", ""}, {"recovery_seal", false}, {"storage_type", "hsm"}};
  co_return response{200, json::serialize(body)};
}

awaitable<response> init_status(const call&) { co_return response{200, R"({"initialized":true})"}; }

// One mount, transit/, in Vault's shape: each mount at the top level and again under data.
awaitable<response> mounts(const call&) {
  json::object transit{{"type", "transit"}, {"description", "keys in the HSMs behind hsm-broker"},
                       {"accessor", "transit_hsmb"}, {"uuid", ""}, {"local", false}, {"seal_wrap", false},
                       {"external_entropy_access", false}, {"options", nullptr}, {"plugin_version", ""},
                       {"running_plugin_version", "hsm-broker-" + std::string(broker_version)},
                       {"config", json::object{{"default_lease_ttl", 0}, {"max_lease_ttl", 0}, {"force_no_cache", false}}}};
  json::object all{{"transit/", transit}};
  json::object body = all;
  body["data"] = std::move(all);
  co_return response{200, json::serialize(body)};
}

// Vault's token lookup, never with the token itself: who the broker takes the caller for.
awaitable<response> lookup_self(const call& c) {
  auto& w = c.who;
  if (w.kind == caller_kind::nobody) co_return error(403, "permission denied");
  json::object meta{{"kind", w.kind == caller_kind::token       ? "token"
                             : w.kind == caller_kind::unix_peer ? "unix"
                             : w.kind == caller_kind::cert      ? "cert"
                                                                : "anyone"}};
  if (w.uid) meta["uid"] = std::to_string(*w.uid);  // strings: Vault's token meta is a string map
  if (w.gid) meta["gid"] = std::to_string(*w.gid);
  if (w.pid) meta["pid"] = std::to_string(*w.pid);
  if (!w.unit.empty()) meta["unit"] = w.unit;
  if (!w.cert_subject.empty()) meta["cert_subject"] = w.cert_subject;
  json::array policies;
  for (auto& p : w.policies) policies.push_back(json::string(p));
  json::object data{{"display_name", w.display_name}, {"policies", std::move(policies)}, {"meta", std::move(meta)},
                    {"ttl", 0}, {"creation_ttl", 0}, {"explicit_max_ttl", 0}, {"expire_time", nullptr},
                    {"renewable", false}, {"orphan", true}, {"num_uses", 0}, {"type", "service"}, {"id", ""},
                    {"accessor", ""}, {"path", "auth/token/lookup-self"}, {"entity_id", ""}};
  co_return ok(std::move(data));
}

awaitable<response> sync_report(const call& c) {
  auto report = co_await c.keys.sync_report();
  json::object keys;
  for (auto& k : report) {
    json::object versions;
    for (auto& v : k.versions) {
      json::object copies;
      for (auto& cp : v.copies) {
        json::object copy;
        if (!cp.fingerprint.empty()) copy["fingerprint"] = cp.fingerprint;
        if (!cp.problem.empty()) copy["problem"] = cp.problem;
        copies[cp.member] = std::move(copy);
      }
      versions[std::to_string(v.version)] = json::object{{"status", v.status}, {"members", std::move(copies)}};
    }
    keys[k.name] = json::object{{"type", std::string(to_string(k.type))}, {"versions", std::move(versions)}};
  }
  co_return ok(json::object{{"keys", std::move(keys)}});
}

awaitable<response> sync_repair(const call& c) {
  co_await c.keys.repair();  // copy what is missing now, then report
  co_return co_await sync_report(c);
}

awaitable<response> members(const call& c) {
  json::array out;
  for (auto& snap : c.pool.snapshots()) out.push_back(member_json(snap));
  co_return ok(json::object{{"members", std::move(out)}});
}

awaitable<response> list_keys(const call& c) {
  json::array names;
  for (auto& n : c.keys.list_keys())
    if (n != audit::key_name) names.push_back(json::string(n));
  co_return ok(json::object{{"keys", std::move(names)}});
}

response key_answer(const broker_result<key_entry>& key) { return key ? ok(key_info_json(*key)) : error(key.error()); }

awaitable<response> read_key(const call& c) {
  std::string name(c.params.get("name"));
  co_return key_answer(co_await c.keys.lifecycle().read_key(name));
}

awaitable<response> delete_key(const call& c) {
  std::string name(c.params.get("name"));
  auto r = co_await c.keys.lifecycle().delete_key(name);
  co_return r ? response{204, ""} : error(r.error());
}

// Vault's auto_rotate_period: seconds as a number or a string, or a duration ("24h", "90m").
broker_result<std::optional<std::int64_t>> get_period(const json::object& o) {
  auto* v = o.if_contains("auto_rotate_period");
  if (!v || v->is_null()) return std::optional<std::int64_t>{};
  auto bad = invalid_input("auto_rotate_period must be a whole number of seconds or a duration such as 24h");
  if (v->is_string()) {
    std::string_view s = v->as_string();
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos) {
      json::object tmp{{"p", s}};
      auto n = get_uint(tmp, "p");
      if (!n || **n > (1ull << 40)) return bad;
      return std::optional<std::int64_t>(static_cast<std::int64_t>(**n));
    }
    auto d = parse_duration(s);
    if (!d || d->count() % 1000 != 0) return bad;
    return std::optional<std::int64_t>(d->count() / 1000);
  }
  auto n = get_uint(o, "auto_rotate_period");
  if (!n || **n > (1ull << 40)) return bad;
  return std::optional<std::int64_t>(static_cast<std::int64_t>(**n));
}

// Options Vault honours that the broker cannot: refused with why, never ignored.
std::optional<response> refuse_unkeepable(const json::object& body) {
  for (auto flag : {"derived", "exportable", "allow_plaintext_backup", "convergent_encryption"}) {
    auto v = get_bool(body, flag);
    if (!v) return error(v.error());
    if (v->value_or(false)) return error(400, std::string(flag) + " keys are not supported: key material never leaves the HSMs");
  }
  return std::nullopt;
}

awaitable<response> create_key(const call& c) {
  auto type_name = get_string(c.body, "type");
  if (!type_name) co_return error(type_name.error());
  create_options opts;
  if (*type_name) {
    auto type = parse_key_type(**type_name);
    if (!type) co_return error(400, "unsupported key type \"" + **type_name + "\"");
    opts.type = *type;
  }
  if (auto refused = refuse_unkeepable(c.body)) co_return std::move(*refused);
  auto period = get_period(c.body);
  if (!period) co_return error(period.error());
  opts.auto_rotate_period = period->value_or(0);
  auto size = get_uint(c.body, "key_size");
  if (!size) co_return error(size.error());
  if (*size && **size != 0 && opts.type == key_type::hmac && **size != 32)
    co_return error(400, "key_size " + std::to_string(**size) + " is not supported: hmac keys are 32 bytes");
  std::string name(c.params.get("name"));
  co_return key_answer(co_await c.keys.lifecycle().create_key(name, opts));
}

awaitable<response> rotate_key(const call& c) {
  std::string name(c.params.get("name"));
  co_return key_answer(co_await c.keys.lifecycle().rotate_key(name));
}

awaitable<response> configure_key(const call& c) {
  config_change change;
  auto mdv = get_uint(c.body, "min_decryption_version");
  auto mev = get_uint(c.body, "min_encryption_version");
  auto del = get_bool(c.body, "deletion_allowed");
  if (!mdv) co_return error(mdv.error());
  if (!mev) co_return error(mev.error());
  if (!del) co_return error(del.error());
  if (*mdv) change.min_decryption_version = static_cast<std::uint32_t>(std::min<std::uint64_t>(**mdv, 0xffffffffu));
  if (*mev) change.min_encryption_version = static_cast<std::uint32_t>(std::min<std::uint64_t>(**mev, 0xffffffffu));
  change.deletion_allowed = *del;
  for (auto flag : {"exportable", "allow_plaintext_backup"}) {  // Vault lets config turn these on, never off
    auto v = get_bool(c.body, flag);
    if (!v) co_return error(v.error());
    if (v->value_or(false)) co_return error(400, std::string(flag) + " cannot be set: key material never leaves the HSMs");
  }
  auto period = get_period(c.body);
  if (!period) co_return error(period.error());
  change.auto_rotate_period = *period;
  std::string name(c.params.get("name"));
  co_return key_answer(co_await c.keys.lifecycle().configure_key(name, change));
}

// The version a csr or set-certificate request names (default: the latest), with its public key.
broker_result<std::pair<std::uint32_t, public_key>> certified_version(const key_entry& key, const json::object& body) {
  if (!is_asymmetric(key.meta.type))
    return invalid_input("key type " + std::string(to_string(key.meta.type)) + " has no public key to certify");
  auto v = get_uint(body, "version");
  if (!v) return std::unexpected(v.error());
  std::uint64_t version = v->value_or(0) ? **v : key.meta.latest_version;
  auto pk = key.public_keys.find(static_cast<std::uint32_t>(std::min<std::uint64_t>(version, 0xffffffffu)));
  if (version > key.meta.latest_version || pk == key.public_keys.end())
    return invalid_input("no version " + std::to_string(version) + " of key \"" + key.name + "\"");
  return std::pair{pk->first, pk->second};
}

// Vault 1.15's keys/:name/csr: a certificate request signed by the HSM key (subject and
// extensions from the optional template `csr`).
awaitable<response> key_csr(const call& c) {
  std::string_view name = c.params.get("name");
  auto key = co_await c.keys.lifecycle().read_key(name);
  if (!key) co_return error(key.error());
  auto version = certified_version(*key, c.body);
  if (!version) co_return error(version.error());
  auto tmpl = get_string(c.body, "csr");
  if (!tmpl) co_return error(tmpl.error());
  auto builder = csr_builder::make(version->second, key->meta.type, tmpl->value_or(""));
  if (!builder) co_return error(builder.error());
  auto opts = builder->signing();
  opts.key_version = version->first;
  auto tbs = builder->to_be_signed();
  auto signed_by_hsm = co_await c.keys.operations().sign(name, tbs, opts);
  if (!signed_by_hsm) co_return error(signed_by_hsm.error());
  auto sig = parse_versioned(signed_by_hsm->text);
  if (!sig) co_return error(500, "the signature over the certificate request is malformed");
  auto pem = builder->finish(sig->value);
  if (!pem) co_return error(pem.error());
  co_return ok(json::object{{"name", key->name}, {"type", std::string(to_string(key->meta.type))}, {"csr", *pem}});
}

// Vault 1.15's keys/:name/set-certificate: the CA's chain for a version, kept in the key's record.
awaitable<response> set_certificate(const call& c) {
  std::string name(c.params.get("name"));
  auto key = co_await c.keys.lifecycle().read_key(name);
  if (!key) co_return error(key.error());
  auto version = certified_version(*key, c.body);
  if (!version) co_return error(version.error());
  auto chain = get_string(c.body, "certificate_chain");
  if (!chain) co_return error(chain.error());
  if (!*chain) co_return error(400, "missing field \"certificate_chain\"");
  auto checked = check_certificate_chain(version->second, **chain);
  if (!checked) co_return error(checked.error());
  auto stored = co_await c.keys.lifecycle().set_certificate_chain(name, version->first, std::move(*checked));
  co_return stored ? response{204, ""} : error(stored.error());
}

bool is_random_source(std::string_view s) { return s == "platform" || s == "seal" || s == "all"; }
bool all_digits(std::string_view s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos; }

// Vault's forms: /random, /random/<bytes>, /random/<source>, /random/<source>/<bytes>; the source
// (platform, seal or all: here each is the HSMs' generator) in the path or the body.
awaitable<response> random(const call& c) {
  std::string_view source = c.params.get("source");
  auto bytes_text = c.params.get("bytes");
  if (bytes_text.empty() && all_digits(source)) {
    bytes_text = source;
    source = {};
  }
  auto body_source = get_string(c.body, "source");
  if (!body_source) co_return error(body_source.error());
  if (source.empty() && *body_source) source = **body_source;
  if (!source.empty() && !is_random_source(source))
    co_return error(400, "unsupported entropy source \"" + std::string(source) + "\": use platform, seal or all (each is the HSMs' generator here)");
  std::uint64_t n = 32;
  if (!bytes_text.empty()) {
    json::object tmp{{"bytes", bytes_text}};
    auto v = get_uint(tmp, "bytes");
    if (!v) co_return error(400, "the number of bytes in the path must be a whole number");
    n = **v;
  } else if (auto v = get_uint(c.body, "bytes"); !v) {
    co_return error(v.error());
  } else if (*v) {
    n = **v;
  }
  if (n == 0 || n > max_random_bytes) co_return error(400, "bytes must be between 1 and " + std::to_string(max_random_bytes));
  auto format = get_string(c.body, "format");
  if (!format) co_return error(format.error());
  std::string fmt = format->value_or("base64");
  if (fmt != "base64" && fmt != "hex") co_return error(400, "format must be base64 or hex");
  auto r = co_await c.keys.operations().random(static_cast<std::size_t>(n));
  if (!r) co_return error(r.error());
  co_return ok(json::object{{"random_bytes", fmt == "hex" ? hex_encode(*r) : base64_encode(*r)}});
}

awaitable<response> datakey(const call& c) {
  auto kind = c.params.get("type");
  if (kind != "plaintext" && kind != "wrapped") co_return error(400, "datakey type must be plaintext or wrapped");
  if (auto nonce = get_string(c.body, "nonce"); !nonce || (*nonce && !(*nonce)->empty()))
    co_return error(400, "nonce is only for convergent encryption, which the broker does not offer: the HSM picks every nonce");
  auto bits = get_uint(c.body, "bits");
  if (!bits) co_return error(bits.error());
  auto r = co_await c.keys.operations().datakey(c.params.get("name"),
                                   static_cast<std::uint32_t>(std::min<std::uint64_t>(bits->value_or(256), 0xffffffffu)));
  if (!r) co_return error(r.error());
  json::object out{{"ciphertext", r->ciphertext.text}, {"key_version", r->ciphertext.version}};
  if (kind == "plaintext") out["plaintext"] = base64_encode(r->plaintext);
  co_return ok(std::move(out));
}

awaitable<response> encrypt(const call& c) {
  auto name = c.params.get("name");
  item_handler handle_item = [&](const json::object& in) -> awaitable<broker_result<json::object>> {
    auto plaintext = get_base64(in, "plaintext", true);
    if (!plaintext) co_return std::unexpected(plaintext.error());
    if (auto nonce = get_string(in, "nonce"); !nonce || (*nonce && !(*nonce)->empty()))
      co_return invalid_input("nonce is only for convergent encryption, which the broker does not offer: the HSM picks every nonce");
    auto aad = get_base64(in, "associated_data", false);
    if (!aad) co_return std::unexpected(aad.error());
    auto version = get_version(in);
    if (!version) co_return std::unexpected(version.error());
    auto r = co_await c.keys.operations().encrypt(name, *plaintext, *aad, *version);
    if (!r) co_return std::unexpected(r.error());
    co_return versioned_json("ciphertext", *r);
  };
  co_return co_await single_or_batch(c.req, c.max_batch_items, c.body, handle_item);
}

awaitable<response> decrypt(const call& c) {
  auto name = c.params.get("name");
  item_handler handle_item = [&](const json::object& in) -> awaitable<broker_result<json::object>> {
    auto sealed = get_sealed_input(in);
    if (!sealed) co_return std::unexpected(sealed.error());
    auto r = co_await c.keys.operations().decrypt(name, sealed->ciphertext, sealed->aad);
    if (!r) co_return std::unexpected(r.error());
    co_return json::object{{"plaintext", base64_encode(*r)}};
  };
  co_return co_await single_or_batch(c.req, c.max_batch_items, c.body, handle_item);
}

awaitable<response> rewrap(const call& c) {
  auto name = c.params.get("name");
  item_handler handle_item = [&](const json::object& in) -> awaitable<broker_result<json::object>> {
    auto sealed = get_sealed_input(in);
    if (!sealed) co_return std::unexpected(sealed.error());
    if (auto nonce = get_string(in, "nonce"); !nonce || (*nonce && !(*nonce)->empty()))
      co_return invalid_input("nonce is only for convergent encryption, which the broker does not offer: the HSM picks every nonce");
    auto version = get_version(in);
    if (!version) co_return std::unexpected(version.error());
    auto r = co_await c.keys.operations().rewrap(name, sealed->ciphertext, sealed->aad, *version);
    if (!r) co_return std::unexpected(r.error());
    co_return versioned_json("ciphertext", *r);
  };
  co_return co_await single_or_batch(c.req, c.max_batch_items, c.body, handle_item);
}

awaitable<response> sign(const call& c) {
  auto name = c.params.get("name");
  auto opts = parse_sign_options(c.body, c.params.get("hash_algorithm"));
  if (!opts) co_return error(opts.error());
  item_handler handle_item = [&](const json::object& in) -> awaitable<broker_result<json::object>> {
    auto input = get_base64(in, "input", true);
    if (!input) co_return std::unexpected(input.error());
    auto r = co_await c.keys.operations().sign(name, *input, *opts);  // batch items share the request's options
    if (!r) co_return std::unexpected(r.error());
    co_return versioned_json("signature", *r);
  };
  co_return co_await single_or_batch(c.req, c.max_batch_items, c.body, handle_item);
}

awaitable<response> hmac(const call& c) {
  auto name = c.params.get("name");
  auto alg = parse_sign_options(c.body, c.params.get("algorithm"));
  if (!alg) co_return error(alg.error());
  item_handler handle_item = [&](const json::object& in) -> awaitable<broker_result<json::object>> {
    auto input = get_base64(in, "input", true);
    if (!input) co_return std::unexpected(input.error());
    auto version = get_version(in);
    if (!version) co_return std::unexpected(version.error());
    auto r = co_await c.keys.operations().hmac(name, *input, alg->hash, *version);
    if (!r) co_return std::unexpected(r.error());
    co_return versioned_json("hmac", *r);
  };
  co_return co_await single_or_batch(c.req, c.max_batch_items, c.body, handle_item);
}

awaitable<response> verify(const call& c) {
  auto name = c.params.get("name");
  auto opts = parse_sign_options(c.body, c.params.get("hash_algorithm"));
  if (!opts) co_return error(opts.error());
  item_handler handle_item = [&](const json::object& in) -> awaitable<broker_result<json::object>> {
    auto input = get_base64(in, "input", true);
    if (!input) co_return std::unexpected(input.error());
    if (in.contains("cmac")) co_return invalid_input("cmac is not supported (Vault Enterprise's CMAC keys are not offered)");
    auto sig = get_string(in, "signature");
    auto mac = get_string(in, "hmac");
    if (!sig) co_return std::unexpected(sig.error());
    if (!mac) co_return std::unexpected(mac.error());
    if (bool(*sig) == bool(*mac)) co_return invalid_input("give exactly one of signature or hmac");
    broker_result<bool> valid = false;
    if (*mac) {
      valid = co_await c.keys.operations().verify_hmac(name, *input, **mac, opts->hash);  // no co_await inside ?: (GCC 12)
    } else {
      valid = co_await c.keys.operations().verify(name, *input, **sig, *opts);
    }
    if (!valid) co_return std::unexpected(valid.error());
    co_return json::object{{"valid", *valid}};
  };
  co_return co_await single_or_batch(c.req, c.max_batch_items, c.body, handle_item);
}

// Vault's OpenAPI document, as Vault serves it (the document itself, not under data).
awaitable<response> openapi(const call&) {
  static const std::string doc = openapi_document(routes::table());
  co_return response{200, doc};
}

// Vault's hash: a digest computed by the broker (no key, so no HSM is involved).
awaitable<response> hash(const call& c) {
  auto alg_name = get_string(c.body, "algorithm");
  if (!alg_name) co_return error(alg_name.error());
  std::string name = !c.params.get("algorithm").empty() ? std::string(c.params.get("algorithm")) : alg_name->value_or("sha2-256");
  auto alg = parse_hash_alg(name);
  if (!alg || *alg == hash_alg::none || *alg == hash_alg::sha1)
    co_return error(400, "unsupported algorithm \"" + name + "\": use sha2-224, sha2-256, sha2-384, sha2-512 or sha3-224 to sha3-512");
  auto format = get_string(c.body, "format");
  if (!format) co_return error(format.error());
  std::string fmt = format->value_or("hex");
  if (fmt != "hex" && fmt != "base64") co_return error(400, "format must be hex or base64");
  auto input = get_base64(c.body, "input", true);
  if (!input) co_return error(input.error());
  auto sum = compute_digest(*alg, *input);
  if (!sum) co_return error(500, "digest computation failed");
  co_return ok(json::object{{"sum", fmt == "hex" ? hex_encode(*sum) : base64_encode(*sum)}});
}

// Vault's sys/audit-hash: what a value looks like in the audit trail, to search it.
awaitable<response> audit_hash(const call& c) {
  if (!c.audit || c.params.get("device") != "file") co_return error(400, "no audit device \"" + std::string(c.params.get("device")) + "\" (the one there is, with audit.file set, is \"file\")");
  auto input = get_string(c.body, "input");
  if (!input) co_return error(input.error());
  if (!*input) co_return error(400, "missing field \"input\"");
  if (!c.audit->key().ready()) co_return error(503, "the audit key is not known yet (no member has served it)");
  auto hash = c.audit->key().hash(**input);
  json::object body{{"hash", hash}, {"data", json::object{{"hash", hash}}}};
  co_return response{200, json::serialize(body)};
}

struct route_entry {
  route_spec spec;
  handler run;
};

using cap = vault_capability;
constexpr method_set GET = methods::get, HEAD = methods::head, POST = methods::post, DELETE = methods::del,
                     LIST = methods::list, WRITE = methods::write;

// Every route, in match order. Capabilities are Vault's for the same request: a POST or PUT is
// `update` (Vault asks for `create` only where a path has an existence check, i.e. encrypt's
// upsert, which the broker does not do); the broker's own routes are operators' and need `sudo`
// to change anything; `sys/` routes need `read` (DESIGN), audit-hash too, as an auditor's.
// A write op's scope "/v1/transit/<op>/*" makes any other method there a 405, at any depth.
// clang-format off
constexpr route_entry entries[] = {
  // operation       methods     pattern                                      capability   admin  unauth body   state  method scope
  {{"metrics",       GET,        "/metrics",                                  cap::read,   true,  false, false, false, ""}, metrics},
  {{"health",        GET | HEAD, "/v1/sys/health",                            cap::read,   false, true,  false, false, ""}, health},
  {{"seal_status",   GET,        "/v1/sys/seal-status",                       cap::read,   false, true,  false, false, ""}, seal_status},
  {{"init_status",   GET,        "/v1/sys/init",                              cap::read,   false, true,  false, false, ""}, init_status},
  {{"mounts",        GET,        "/v1/sys/mounts",                            cap::read,   false, false, false, false, ""}, mounts},
  {{"openapi",       GET,        "/v1/sys/internal/specs/openapi",            cap::read,   false, false, false, false, ""}, openapi},
  {{"lookup_self",   GET,        "/v1/auth/token/lookup-self",                cap::read,   false, false, false, false, ""}, lookup_self},
  {{"audit_hash",    WRITE,      "/v1/sys/audit-hash/:device",                cap::read,   true,  false, true,  false, ""}, audit_hash},
  {{"sync_report",   GET,        "/v1/broker/keys/sync",                      cap::read,    true,  false, false, false, ""}, sync_report},
  {{"sync_repair",   POST,       "/v1/broker/keys/sync",                      cap::sudo,   true,  false, false, true,  ""}, sync_repair},
  {{"members",       GET,        "/v1/broker/members",                        cap::read,    true,  false, false, false, ""}, members},
  {{"list_keys",     LIST,       "/v1/transit/keys",                          cap::list,   false, false, false, false, ""}, list_keys},
  {{"read_key",      GET,        "/v1/transit/keys/:name",                    cap::read,   false, false, false, false, ""}, read_key},
  {{"delete_key",    DELETE,     "/v1/transit/keys/:name",                    cap::del,    false, false, false, true,  ""}, delete_key},
  {{"create_key",    WRITE,      "/v1/transit/keys/:name",                    cap::create, false, false, true,  true,  ""}, create_key},
  {{"rotate_key",    WRITE,      "/v1/transit/keys/:name/rotate",             cap::update, false, false, true,  true,  "/v1/transit/keys/:name/:action"}, rotate_key},
  {{"read_csr",      GET,        "/v1/transit/keys/:name/csr",                cap::read,   false, false, false, false, ""}, key_csr},
  {{"csr",           WRITE,      "/v1/transit/keys/:name/csr",                cap::update, false, false, true,  false, "/v1/transit/keys/:name/:action"}, key_csr},
  {{"set_certificate", WRITE,    "/v1/transit/keys/:name/set-certificate",    cap::update, false, false, true,  true,  "/v1/transit/keys/:name/:action"}, set_certificate},
  {{"configure_key", WRITE,      "/v1/transit/keys/:name/config",             cap::update, false, false, true,  true,  "/v1/transit/keys/:name/:action"}, configure_key},
  {{"random",        WRITE,      "/v1/transit/random/:source?/:bytes?",       cap::update, false, false, true,  false, "/v1/transit/random/*"}, random},
  {{"datakey",       WRITE,      "/v1/transit/datakey/:type/:name",           cap::update, false, false, true,  false, "/v1/transit/datakey/*"}, datakey},
  {{"encrypt",       WRITE,      "/v1/transit/encrypt/:name",                 cap::update, false, false, true,  false, "/v1/transit/encrypt/*"}, encrypt},
  {{"decrypt",       WRITE,      "/v1/transit/decrypt/:name",                 cap::update, false, false, true,  false, "/v1/transit/decrypt/*"}, decrypt},
  {{"rewrap",        WRITE,      "/v1/transit/rewrap/:name",                  cap::update, false, false, true,  false, "/v1/transit/rewrap/*"}, rewrap},
  {{"sign",          WRITE,      "/v1/transit/sign/:name/:hash_algorithm?",   cap::update, false, false, true,  false, "/v1/transit/sign/*"}, sign},
  {{"verify",        WRITE,      "/v1/transit/verify/:name/:hash_algorithm?", cap::update, false, false, true,  false, "/v1/transit/verify/*"}, verify},
  {{"hmac",          WRITE,      "/v1/transit/hmac/:name/:algorithm?",        cap::update, false, false, true,  false, "/v1/transit/hmac/*"}, hmac},
  {{"hash",          WRITE,      "/v1/transit/hash/:algorithm?",              cap::update, false, false, true,  false, "/v1/transit/hash/*"}, hash},
};
// clang-format on

// Where no route takes the request. Under /v1/transit/ a POST or PUT body is read before the
// path is judged, so a bad body answers 400 there even on an unknown path, as it always has.
response no_route(const request& req, const target& t, route_match::kind outcome) {
  static const path_pattern transit_paths("/v1/transit/:op/*");
  if (outcome == route_match::method_not_allowed)
    return error(405, "method " + std::string(req.method) + " not allowed on " + std::string(req.target));
  if (is_write(req.method) && transit_paths.match(t.segments))
    if (auto body = parse_body(req.body); !body) return error(body.error());
  return error(404, "unsupported path " + std::string(req.target));
}

}  // namespace

const route_table& routes::table() {
  static const route_table table = [] {
    std::vector<route_spec> specs;
    for (auto& e : entries) specs.push_back(e.spec);
    return route_table(std::move(specs));
  }();
  return table;
}

// Once per request: the X-Vault-Request guard, who calls and whether they may (api/auth/gate),
// and the audit hook around it all (a request line before the handler, denied and unknown
// requests too; a response line after). The health check is not audited (probes every second;
// Vault neither).
awaitable<response> routes::handle(const request& req) {
  auto started = std::chrono::steady_clock::now();
  std::size_t route = metrics_.unmatched();
  auto answered = co_await answer(req, route);
  metrics_.record(route, answered.status, std::chrono::steady_clock::now() - started);
  co_return answered;
}

std::string routes::metrics_text() {
  return prometheus_text({pool_, table(), metrics_, gate_.counters(), audit_ ? &audit_->counters() : nullptr});
}

awaitable<response> routes::answer(const request& req, std::size_t& route) {
  if (auto refused = gate_.precheck(req)) co_return std::move(*refused);
  auto t = split_target(req.target);
  auto found = table().match(req.method, t);
  bool matched = found.outcome == route_match::found;
  if (matched) route = found.index;
  caller who;
  std::optional<response> refused;
  if (matched) refused = gate_.admit(req, entries[found.index].spec, t, who);
  else who = gate_.unrouted(req);
  bool parses = matched && entries[found.index].spec.json_body && is_write(req.method);
  auto body = parses ? parse_body(req.body) : broker_result<json::object>(json::object{});
  bool audited = audit_ && !(matched && entries[found.index].spec.unauthenticated);
  if (!audited) {
    if (refused) co_return std::move(*refused);
    co_return co_await dispatch(req, t, found, who, body);  // no co_await inside ?: (GCC 12)
  }
  audit::ticket ticket;
  auto operation = matched ? to_string(entries[found.index].spec.needs) : audit::operation_of(req.method, req.target);
  // The line names Vault's operation for the method where the capability is another's (sudo;
  // audit-hash, a POST that `read` allows).
  if (operation == "sudo" || (operation == "read" && is_write(req.method))) operation = audit::operation_of(req.method, req.target);
  const json::object* parsed = parses && body ? &*body : nullptr;  // else the audit line parses what it can
  bool side_effects = !refused && (!matched || entries[found.index].spec.changes_state);
  auto token = presented_token(req);
  auto unaudited = co_await audit_->begin(req, who, operation, ticket, parsed, side_effects, token);
  if (unaudited) co_return std::move(*unaudited);
  response answer;
  if (refused) answer = std::move(*refused);
  else answer = co_await dispatch(req, t, found, who, body);
  co_return co_await audit_->finish(ticket, std::move(answer));
}

awaitable<response> routes::dispatch(const request& req, const target& t, route_match& found, const caller& who,
                                     const broker_result<json::object>& body) {
  if (found.outcome != route_match::found) co_return no_route(req, t, found.outcome);
  if (found.params.get("name") == audit::key_name)  // the audit key's source: not for the Transit API
    co_return error(400, "key name \"" + std::string(audit::key_name) + "\" is reserved for the audit trail");
  if (!body) co_return error(body.error());
  auto& route = entries[found.index];
  call c{keys_, pool_, max_batch_items_, audit_, req, found.params, *body, who, *this};
  co_return co_await route.run(c);
}

}  // namespace hsmb::api
