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
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s.%06lldZ", prefix, static_cast<long long>(us));
  return buf;
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
  char tail[24];
  std::snprintf(tail, sizeof tail, "%04llx-%012llx", static_cast<unsigned long long>((n >> 48) & 0xffff),
                static_cast<unsigned long long>(n & 0xffffffffffffULL));
  return prefix + tail;
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

// A JSON body, redacted; null when there is none or it is not JSON (nothing of it is written).
json::value redacted_body(std::string_view body, const audit_key& key) {
  if (body.empty()) return nullptr;
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec) return nullptr;
  redact(v, key);
  return v;
}

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
  std::string body = "{\"time\":" + json::serialize(json::string(now_rfc3339())) + ",\"type\":\"" + std::string(type) +
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
  json::object r{{"id", t.id},
                 {"operation", operation},
                 {"path", path_of(req.target)},
                 {"remote_address", req.remote_address},
                 {"data", redacted_body(req.body, key_)}};
  t.request = json::serialize(r);
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
  if (auto* o = body.if_object(); o && o->contains("data")) data = o->at("data");
  redact(data, key_);
  json::object resp{{"status", answer.status}, {"data", std::move(data)}};
  std::string tail = ",\"response\":" + json::serialize(resp) + ",\"error\":" + json::serialize(json::string(error_of(body)));
  auto text = line("response", t, tail);
  bool written = co_await write(std::move(text));
  if (!written && fail_closed_) co_return refuse("the audit log cannot be written: response withheld");
  co_return answer;
}

}  // namespace hsmb::api::audit
