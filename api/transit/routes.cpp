#include "api/transit/routes.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/json/serialize.hpp>

#include "api/metrics/prometheus.h"
#include "api/transit/http_status.h"
#include "api/transit/json_codec.h"
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
response ok(json::object data) { return {200, data_body(std::move(data))}; }

bool is_write(std::string_view m) { return (method_bit(m) & methods::write) != 0; }

// A batch item's answer or error, plus Vault's status rule: all failed → the first error's status.
struct batch_results {
  json::array items;
  std::optional<broker_error> first_error;
  std::size_t failures = 0;

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
      return {http_status(first_error->kind), data_body(json::object{{"batch_results", std::move(items)}})};
    }
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

awaitable<response> create_key(const call& c) {
  auto type_name = get_string(c.body, "type");
  if (!type_name) co_return error(type_name.error());
  create_options opts;
  if (*type_name) {
    auto type = parse_key_type(**type_name);
    if (!type) co_return error(400, "unsupported key type \"" + **type_name + "\"");
    opts.type = *type;
  }
  for (auto flag : {"derived", "exportable", "allow_plaintext_backup", "convergent_encryption"}) {
    auto v = get_bool(c.body, flag);
    if (!v) co_return error(v.error());
    if (v->value_or(false)) co_return error(400, std::string(flag) + " keys are not supported: key material never leaves the HSMs");
  }
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
  std::string name(c.params.get("name"));
  co_return key_answer(co_await c.keys.lifecycle().configure_key(name, change));
}

// /random/<bytes>, /random/<source> and /random/<source>/<bytes>: a lone segment is the source
// only when it names one.
awaitable<response> random(const call& c) {
  auto source = c.params.get("source");
  auto bytes_text = c.params.get("bytes");
  if (bytes_text.empty() && source != "platform" && source != "seal" && source != "all") bytes_text = source;
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
// upsert, which the broker does not do); the broker's own routes are operators' and need `sudo`.
// A write op's scope "/v1/transit/<op>/*" makes any other method there a 405, at any depth.
// clang-format off
constexpr route_entry entries[] = {
  // operation       methods     pattern                                      capability   admin  unauth body   method scope
  {{"metrics",       GET,        "/metrics",                                  cap::read,   true,  false, false, ""}, metrics},
  {{"health",        GET | HEAD, "/v1/sys/health",                            cap::read,   false, true,  false, ""}, health},
  {{"seal_status",   GET,        "/v1/sys/seal-status",                       cap::read,   false, true,  false, ""}, seal_status},
  {{"init_status",   GET,        "/v1/sys/init",                              cap::read,   false, true,  false, ""}, init_status},
  {{"mounts",        GET,        "/v1/sys/mounts",                            cap::read,   false, false, false, ""}, mounts},
  {{"lookup_self",   GET,        "/v1/auth/token/lookup-self",                cap::read,   false, false, false, ""}, lookup_self},
  {{"audit_hash",    WRITE,      "/v1/sys/audit-hash/:device",                cap::sudo,   true,  false, true,  ""}, audit_hash},
  {{"sync_report",   GET,        "/v1/broker/keys/sync",                      cap::read,    true,  false, false, ""}, sync_report},
  {{"sync_repair",   POST,       "/v1/broker/keys/sync",                      cap::sudo,   true,  false, false, ""}, sync_repair},
  {{"members",       GET,        "/v1/broker/members",                        cap::read,    true,  false, false, ""}, members},
  {{"list_keys",     LIST,       "/v1/transit/keys",                          cap::list,   false, false, false, ""}, list_keys},
  {{"read_key",      GET,        "/v1/transit/keys/:name",                    cap::read,   false, false, false, ""}, read_key},
  {{"delete_key",    DELETE,     "/v1/transit/keys/:name",                    cap::del,    false, false, false, ""}, delete_key},
  {{"create_key",    WRITE,      "/v1/transit/keys/:name",                    cap::create, false, false, true,  ""}, create_key},
  {{"rotate_key",    WRITE,      "/v1/transit/keys/:name/rotate",             cap::update, false, false, true,  "/v1/transit/keys/:name/:action"}, rotate_key},
  {{"configure_key", WRITE,      "/v1/transit/keys/:name/config",             cap::update, false, false, true,  "/v1/transit/keys/:name/:action"}, configure_key},
  {{"random",        WRITE,      "/v1/transit/random/:source?/:bytes?",       cap::update, false, false, true,  "/v1/transit/random/*"}, random},
  {{"datakey",       WRITE,      "/v1/transit/datakey/:type/:name",           cap::update, false, false, true,  "/v1/transit/datakey/*"}, datakey},
  {{"encrypt",       WRITE,      "/v1/transit/encrypt/:name",                 cap::update, false, false, true,  "/v1/transit/encrypt/*"}, encrypt},
  {{"decrypt",       WRITE,      "/v1/transit/decrypt/:name",                 cap::update, false, false, true,  "/v1/transit/decrypt/*"}, decrypt},
  {{"rewrap",        WRITE,      "/v1/transit/rewrap/:name",                  cap::update, false, false, true,  "/v1/transit/rewrap/*"}, rewrap},
  {{"sign",          WRITE,      "/v1/transit/sign/:name/:hash_algorithm?",   cap::update, false, false, true,  "/v1/transit/sign/*"}, sign},
  {{"verify",        WRITE,      "/v1/transit/verify/:name/:hash_algorithm?", cap::update, false, false, true,  "/v1/transit/verify/*"}, verify},
  {{"hmac",          WRITE,      "/v1/transit/hmac/:name/:algorithm?",        cap::update, false, false, true,  "/v1/transit/hmac/*"}, hmac},
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
  bool audited = audit_ && !(matched && entries[found.index].spec.unauthenticated);
  if (!audited) {
    if (refused) co_return std::move(*refused);
    co_return co_await dispatch(req, t, found, who);  // no co_await inside ?: (GCC 12)
  }
  audit::ticket ticket;
  auto operation = matched ? to_string(entries[found.index].spec.needs) : audit::operation_of(req.method, req.target);
  if (operation == "sudo") operation = audit::operation_of(req.method, req.target);
  auto unaudited = co_await audit_->begin(req, who, operation, ticket);
  if (unaudited) co_return std::move(*unaudited);
  response answer;
  if (refused) answer = std::move(*refused);
  else answer = co_await dispatch(req, t, found, who);
  co_return co_await audit_->finish(ticket, std::move(answer));
}

awaitable<response> routes::dispatch(const request& req, const target& t, route_match& found, const caller& who) {
  if (found.outcome != route_match::found) co_return no_route(req, t, found.outcome);
  if (found.params.get("name") == audit::key_name)  // the audit key's source: not for the Transit API
    co_return error(400, "key name \"" + std::string(audit::key_name) + "\" is reserved for the audit trail");
  auto& route = entries[found.index];
  auto body = route.spec.json_body && is_write(req.method) ? parse_body(req.body) : broker_result<json::object>(json::object{});
  if (!body) co_return error(body.error());
  call c{keys_, pool_, max_batch_items_, audit_, req, found.params, *body, who, *this};
  co_return co_await route.run(c);
}

}  // namespace hsmb::api
