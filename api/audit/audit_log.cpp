#include "api/audit/audit_log.h"

#include <atomic>
#include <chrono>
#include <ctime>

#include <boost/asio/this_coro.hpp>
#include <boost/json/array.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "api/audit/redaction.h"
#include "common/base64.h"
#include "common/log_line.h"

namespace hsmb::api::audit {
namespace json = boost::json;
namespace {

// Lines are built by appending into one string: a request's two lines cost a few allocations,
// where json::object trees and concatenated temporaries cost dozens (bench/RESULTS.md, audit).

// "2026-12-02T02:24:41.946102Z"; the date and second are formatted once a second.
void append_now(std::string& out) {
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
  out += prefix;
  char frac[8];
  char* end = frac + sizeof frac;
  *--end = 'Z';
  for (int i = 0; i < 6; ++i, us /= 10) *--end = static_cast<char>('0' + us % 10);
  *--end = '.';
  out.append(frac, sizeof frac);
}

// `n`'s low `digits` hex digits.
void append_hex(std::string& out, std::uint64_t n, int digits) {
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out += hex[(n >> (4 * i)) & 15];
}

// UUID-shaped and unique: 64 random bits drawn once per process, then a counter; appended in
// place (the 36 characters would be a heap string of their own).
void append_request_id(std::string& out) {
  static const std::string prefix = [] {
    unsigned char b[8];
    RAND_bytes(b, sizeof b);
    auto h = hex_encode(byte_view(b, sizeof b));
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-";
  }();
  static std::atomic<std::uint64_t> counter{0};
  auto n = ++counter;
  out += prefix;
  append_hex(out, n >> 48, 4);
  out += '-';
  append_hex(out, n, 12);
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

void append_quoted(std::string& out, std::string_view s) {
  out += '"';
  logline::append_json_escaped(out, s);
  out += '"';
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out += ",\"";
  out += name;  // the broker's own names: nothing to escape
  out += "\":";
  append_quoted(out, value);
}

template <class N>
void append_number(std::string& out, std::string_view name, const std::optional<N>& n) {
  if (!n) return;
  out += ",\"";
  out += name;
  out += "\":";
  out += std::to_string(*n);
}

void append_auth(std::string& out, const caller& who, std::string_view token, const audit_key& key) {
  out += "{\"display_name\":";
  append_quoted(out, who.display_name);
  out += ",\"policies\":[";
  for (std::size_t i = 0; i < who.policies.size(); ++i) {
    if (i) out += ',';
    append_quoted(out, who.policies[i]);
  }
  out += "],\"metadata\":{\"kind\":\"";
  out += kind_name(who.kind);
  out += '"';
  append_number(out, "uid", who.uid);
  append_number(out, "gid", who.gid);
  append_number(out, "pid", who.pid);
  if (!who.unit.empty()) append_field(out, "unit", who.unit);
  if (!who.cert_subject.empty()) append_field(out, "cert_subject", who.cert_subject);
  out += '}';
  if (!token.empty()) {  // as Vault's auth.client_token: an auditor finds a token's requests by its hash
    out += ",\"client_token\":\"";
    key.append_hash(out, token);
    out += '"';
  }
  out += '}';
}

// Room on the stack for parsing a body or an answer: the usual ones need no heap at all.
struct parse_arena {
  unsigned char buffer[4096];
  json::monotonic_resource resource{buffer, sizeof buffer};
};

// `text` redacted; null when it is not a JSON object: a bare string or array has no field names
// to say which of it is secret, so nothing of it is written.
void append_redacted_text(std::string& out, std::string_view text, const audit_key& key) {
  parse_arena arena;
  boost::system::error_code ec;
  auto v = text.empty() ? json::value() : json::parse(text, ec, &arena.resource);  // in the arena
  if (ec || !v.is_object()) out += "null";
  else append_redacted(out, v.get_object(), key);
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

std::string_view path_of(std::string_view target) {
  auto path = target.substr(0, target.find('?'));
  while (path.starts_with('/')) path.remove_prefix(1);
  if (path.starts_with("v1/")) path.remove_prefix(3);
  return path;
}

// `"auth":{…},"request":{…}`: what both lines carry.
std::string subject_of(const request& req, const caller& who, std::string_view token, std::string_view operation,
                       const json::object* body, const audit_key& key) {
  std::string out;
  out.reserve(256 + req.body.size());
  out += "\"auth\":";
  append_auth(out, who, token, key);
  out += ",\"request\":{\"id\":\"";
  append_request_id(out);  // hex and dashes
  out += '"';
  append_field(out, "operation", operation);
  append_field(out, "path", path_of(req.target));
  append_field(out, "remote_address", req.remote_address);
  out += ",\"data\":";
  if (body && !blank(req.body)) append_redacted(out, *body, key);
  else append_redacted_text(out, req.body, key);
  out += '}';
  return out;
}

std::string line_start(std::string_view type, const ticket& t, std::size_t more) {
  std::string out;
  out.reserve(64 + t.subject.size() + more + 80);  // and the chain field sealing adds
  out += "{\"time\":\"";
  append_now(out);
  out += "\",\"type\":\"";
  out += type;  // "request" or "response"
  out += "\",";
  out += t.subject;
  return out;
}

// The response line's tail: status, redacted data and the errors joined by "; ". The data comes
// from the handler's own object when it kept it (no parse: a sixth of the audit loop's time);
// other bodies are parsed back.
void append_outcome(std::string& out, const response& answer, const audit_key& key) {
  parse_arena arena;
  json::value body;
  if (!answer.data && answer.content_type == "application/json" && !answer.body.empty()) {
    boost::system::error_code ec;
    body = json::parse(answer.body, ec, &arena.resource);  // in the arena
    if (ec) body = nullptr;
  }
  out += ",\"response\":{\"status\":";
  out += std::to_string(answer.status);
  out += ",\"data\":";
  const json::object* o = body.if_object();
  const json::value* data = o ? o->if_contains("data") : nullptr;
  if (answer.data) append_redacted(out, *answer.data, key);
  else if (data) append_redacted(out, *data, key);
  else out += "null";
  out += "},\"error\":\"";
  bool first = true;
  if (auto* errs = o ? o->if_contains("errors") : nullptr; errs && errs->is_array())
    for (auto& e : errs->as_array())
      if (e.is_string()) {
        if (!std::exchange(first, false)) out += "; ";
        logline::append_json_escaped(out, e.get_string());
      }
  out += '"';
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

const audit_counters& audit_log::counters() {
  counters_.lines = commit_.written_lines();
  counters_.failures = commit_.failed_lines();
  return counters_;
}

boost::asio::awaitable<bool> audit_log::write(std::string body) {
  auto r = co_await commit_.write(std::move(body));
  if (!r) spdlog::error("audit: {}", r.error());
  co_return bool(r);
}

boost::asio::awaitable<std::optional<response>> audit_log::begin(const request& req, const caller& who,
                                                                 std::string_view operation, ticket& t,
                                                                 const json::object* body, bool side_effects,
                                                                 std::string_view token) {
  if (!key_.ready() && fail_closed_) co_return refuse("the audit key is not known yet (no member has served it): request not audited, refused");
  t.subject = subject_of(req, who, token, operation, body, key_);
  auto text = line_start("request", t, 1);  // a named argument: GCC 12 frees a temporary one twice
  text += '}';
  if (!side_effects) {
    t.failed_before = commit_.failed_lines();
    auto executor = co_await boost::asio::this_coro::executor;  // named: see above
    commit_.enqueue(std::move(text), executor);
    co_return std::nullopt;
  }
  bool written = co_await write(std::move(text));
  if (!written && fail_closed_) co_return refuse("the audit log cannot be written: request refused");
  co_return std::nullopt;
}

boost::asio::awaitable<response> audit_log::finish(const ticket& t, response answer) {
  // A request line queued without waiting is either still queued (it goes out in the response
  // line's flush, and shares its fate) or was flushed already: a line lost since may be it. The
  // response line then records the 503 that replaces the answer, not the answer.
  bool request_lost = t.failed_before != no_queued_line && commit_.failed_lines() != t.failed_before;
  if (request_lost) {
    spdlog::error("audit: a request line could not be written");
    if (fail_closed_) answer = refuse("the audit log cannot be written: response withheld");
  }
  auto text = line_start("response", t, 128 + answer.body.size());
  append_outcome(text, answer, key_);
  text += '}';
  bool written = co_await write(std::move(text));
  if (!written && fail_closed_ && !request_lost) co_return refuse("the audit log cannot be written: response withheld");
  co_return answer;  // with request_lost and fail_closed, the 503 already
}

}  // namespace hsmb::api::audit
