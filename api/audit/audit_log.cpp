#include "api/audit/audit_log.h"

#include <atomic>
#include <chrono>
#include <ctime>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "api/audit/redaction.h"
#include "common/base64.h"

namespace hsmb::api::audit {
namespace json = boost::json;
namespace {

// "2026-12-02T02:24:41.946102Z"; the date and second are formatted once a second.
std::string now_rfc3339() {
  thread_local std::time_t last = -1;
  thread_local char prefix[32];
  auto now = std::chrono::system_clock::now();
  auto tt = std::chrono::system_clock::to_time_t(now);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  if (tt != last) {
    std::tm tm{};
    gmtime_r(&tt, &tm);
    std::strftime(prefix, sizeof prefix, "%Y-%m-%dT%H:%M:%S", &tm);
    last = tt;
  }
  std::string out(prefix);
  out.resize(out.size() + 8);
  char* end = out.data() + out.size();
  *--end = 'Z';
  for (int i = 0; i < 6; ++i, us /= 10) *--end = static_cast<char>('0' + us % 10);
  *--end = '.';
  return out;
}

// `n`'s low `digits` hex digits.
void append_hex(std::string& out, std::uint64_t n, int digits) {
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out += hex[(n >> (4 * i)) & 15];
}

// UUID-shaped and unique: 64 random bits drawn once per process, then a counter.
std::string new_request_id() {
  static const std::string prefix = [] {
    unsigned char b[8];
    RAND_bytes(b, sizeof b);
    auto h = hex_encode(byte_view(b, sizeof b));
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-";
  }();
  static std::atomic<std::uint64_t> counter{0};
  auto n = ++counter;
  std::string id = prefix;
  append_hex(id, n >> 48, 4);
  id += '-';
  append_hex(id, n, 12);
  return id;
}

std::string_view kind_name(caller_kind k) {
  switch (k) {
    case caller_kind::anyone: return "anyone";
    case caller_kind::nobody: return "nobody";
    case caller_kind::token: return "token";
    case caller_kind::unix_peer: return "unix";
    case caller_kind::cert: return "cert";
  }
  return "unknown";
}

json::object auth_json(const caller& who) {
  json::array policies;
  for (auto& p : who.policies) policies.push_back(json::string(p));
  json::object meta{{"kind", kind_name(who.kind)}};
  if (who.uid) meta["uid"] = *who.uid;
  if (who.gid) meta["gid"] = *who.gid;
  if (who.pid) meta["pid"] = *who.pid;
  if (!who.unit.empty()) meta["unit"] = who.unit;
  if (!who.cert_subject.empty()) meta["cert_subject"] = who.cert_subject;
  return {{"display_name", who.display_name}, {"policies", std::move(policies)}, {"metadata", std::move(meta)}};
}

// A JSON body's text, redacted; null when there is none or it is not JSON (nothing of it is written).
std::string redacted_body(std::string_view body, const audit_key& key) {
  if (body.empty()) return "null";
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec) return "null";
  redact(v, key);
  return json::serialize(v);
}

std::string quoted(std::string_view s) { return json::serialize(json::string_view(s.data(), s.size())); }

std::string path_of(std::string_view target) {
  auto path = target.substr(0, target.find('?'));
  while (path.starts_with('/')) path.remove_prefix(1);
  if (path.starts_with("v1/")) path.remove_prefix(3);
  return std::string(path);
}

std::string error_of(const json::value& body) {
  std::string out;
  if (auto* o = body.if_object())
    if (auto* errs = o->if_contains("errors"); errs && errs->is_array())
      for (auto& e : errs->as_array())
        if (e.is_string()) out += (out.empty() ? "" : "; ") + std::string(e.as_string());
  return out;
}

std::string line(std::string_view type, const ticket& t, std::string_view tail) {
  std::string body = "{\"time\":\"" + now_rfc3339() + "\",\"type\":\"" + std::string(type) +  // neither needs escaping
                     "\",\"auth\":" + t.auth + ",\"request\":" + t.request;
  body += tail;
  body += "}";
  return body;
}

response unavailable(std::string_view why) {
  return {503, json::serialize(json::object{{"errors", json::array{json::string(why)}}})};
}

}  // namespace

std::string_view operation_of(std::string_view method, std::string_view target) {
  if (method == "LIST" || (method == "GET" && target.find("list=true") != std::string_view::npos)) return "list";
  if (method == "GET" || method == "HEAD") return "read";
  if (method == "DELETE") return "delete";
  return "update";
}

response audit_log::refuse(std::string_view why) {
  ++counters_.refused;
  return unavailable(why);
}

boost::asio::awaitable<bool> audit_log::write(std::string body) {
  auto r = co_await commit_.write(std::move(body));
  ++(r ? counters_.lines : counters_.failures);
  if (!r) spdlog::error("audit: {}", r.error());
  co_return bool(r);
}

boost::asio::awaitable<std::optional<response>> audit_log::begin(const request& req, const caller& who,
                                                                 std::string_view operation, ticket& t) {
  if (!key_.ready() && fail_closed_) co_return refuse("the audit key is not known yet (no member has served it): request not audited, refused");
  t.id = new_request_id();
  t.auth = json::serialize(auth_json(who));
  // Written as text, in the order a json::object would keep: id and operation need no escaping.
  t.request = "{\"id\":\"" + t.id + "\",\"operation\":\"" + std::string(operation) + "\",\"path\":" +
              quoted(path_of(req.target)) + ",\"remote_address\":" + quoted(req.remote_address) +
              ",\"data\":" + redacted_body(req.body, key_) + "}";
  auto text = line("request", t, "");  // a named argument: GCC 12 frees a temporary one twice
  bool written = co_await write(std::move(text));
  if (!written && fail_closed_) co_return refuse("the audit log cannot be written: request refused");
  co_return std::nullopt;
}

boost::asio::awaitable<response> audit_log::finish(const ticket& t, response answer) {
  json::value body = nullptr;
  if (answer.content_type == "application/json" && !answer.body.empty()) {
    boost::system::error_code ec;
    body = json::parse(answer.body, ec);
    if (ec) body = nullptr;
  }
  json::value data = nullptr;
  if (auto* o = body.if_object())
    if (auto* d = o->if_contains("data")) data = std::move(*d);  // moved, not copied: only "errors" is read after
  redact(data, key_);
  std::string tail = ",\"response\":{\"status\":" + std::to_string(answer.status) + ",\"data\":" + json::serialize(data) +
                     "},\"error\":" + quoted(error_of(body));
  auto text = line("response", t, tail);
  bool written = co_await write(std::move(text));
  if (!written && fail_closed_) co_return refuse("the audit log cannot be written: response withheld");
  co_return answer;
}

}  // namespace hsmb::api::audit
