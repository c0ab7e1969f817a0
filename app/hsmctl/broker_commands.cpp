// hsmctl status, members, sync and audit hash: the broker's own state.
#include <iostream>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "app/hsmctl/ctl.h"
#include "app/hsmctl/output.h"

namespace hsmb::hsmctl {
namespace json = boost::json;

namespace {

// "CKR_DEVICE_ERROR 2m05s ago", with " (recovered)" when the member has served since.
std::string last_error_text(const json::value& m, std::chrono::system_clock::time_point now) {
  const auto* error = field(m, "last_error");
  if (!error || !error->is_object()) return "-";
  std::string out = text(field(*error, "code"));
  const auto* at_field = field(*error, "at");
  auto at = at_field && at_field->is_string() ? parse_rfc3339(at_field->get_string()) : std::nullopt;
  if (!at) return out;
  out += ' ';  // appended piecewise: " " + string&& trips GCC 12's -Wrestrict false positive (bug 105329)
  out += age(*at, now);
  out += " ago";
  const auto* since_field = field(m, "state_since");
  auto since = since_field && since_field->is_string() ? parse_rfc3339(since_field->get_string()) : std::nullopt;
  if (text(field(m, "state")) == "serving" && since && *at <= *since) out += " (recovered)";
  return out;
}

void print_members(const json::value& list) {
  auto now = std::chrono::system_clock::now();
  std::vector<std::vector<std::string>> rows = {{"NAME", "STATE", "FOR", "IN-FLIGHT", "P50", "P99", "REQUESTS", "ERRORS",
                                                 "FAILOVERS", "HEDGES", "RESTARTS", "LAST-ERROR"}};
  if (list.is_array()) {
    for (const auto& m : list.get_array()) {
      const json::value* latency = field(m, "latency_ms");
      const auto* since = field(m, "state_since");
      auto since_at = since && since->is_string() ? parse_rfc3339(since->get_string()) : std::nullopt;
      rows.push_back({text(field(m, "name")), text(field(m, "state")), since_at ? age(*since_at, now) : "-",
                      text(field(m, "in_flight")), milliseconds_text(latency ? field(*latency, "p50") : nullptr),
                      milliseconds_text(latency ? field(*latency, "p99") : nullptr), text(field(m, "requests")),
                      text(field(m, "errors")), text(field(m, "failovers")), text(field(m, "hedges")),
                      text(field(m, "worker_restarts")), last_error_text(m, now)});
    }
  }
  print_table(rows);
}

}  // namespace

// Health in words, then the members table when the caller may read it.
int ctl::status() {
  o_.accept({});
  o_.operands(1, 0, 0);
  auto health = send("GET", "/v1/sys/health");
  boost::system::error_code ec;
  auto v = json::parse(health.body, ec);
  if (ec || (health.status != 200 && health.status != 503)) fail_on_error(health, v);
  if (const auto* d = field(v, "data")) v = *d;  // Vault answers unwrapped; accept both
  auto members_reply = send("GET", "/v1/broker/members");
  json::value members = nullptr;
  if (members_reply.status == 200)
    if (auto parsed = json::parse(members_reply.body, ec); !ec)
      if (const auto* list = field(data_of(parsed), "members")) members = *list;
  bool serving = health.status == 200;
  if (o_.json) {
    std::cout << json::serialize(json::object{{"health", v}, {"members", members}}) << "\n";
    return serving ? exit_ok : exit_error;
  }
  const auto* counts = field(v, "members");
  std::cout << "broker:   " << (serving ? "serving" : "NOT SERVING") << ", " << text(counts ? field(*counts, "serving") : nullptr)
            << " of " << text(counts ? field(*counts, "total") : nullptr) << " members serving\n"
            << "version:  " << text(field(v, "version")) << "\n";
  if (!members.is_null()) {
    std::cout << "\n";
    print_members(members);
  } else if (members_reply.status == 403) {
    std::cout << "(members: this token may not read /v1/broker/members)\n";
  }
  return serving ? exit_ok : exit_error;
}

int ctl::members() {
  o_.accept({});
  o_.operands(1, 0, 0);
  auto v = call("GET", "/v1/broker/members");
  if (!o_.json) print_members(field(data_of(v), "members") ? *field(data_of(v), "members") : json::value());
  return exit_ok;
}

// One row per key version and member: what `GET /v1/broker/keys/sync` found.
int ctl::sync() {
  o_.accept({"--repair"});
  o_.operands(1, 0, 0);
  auto v = call(o_.flag("--repair") ? "POST" : "GET", "/v1/broker/keys/sync");
  bool drift = false;
  std::vector<std::vector<std::string>> rows = {{"KEY", "TYPE", "VERSION", "STATUS", "MEMBER", "FINGERPRINT"}};
  const auto* keys = field(data_of(v), "keys");
  if (keys && keys->is_object()) {
    for (const auto& [name, key] : keys->get_object()) {
      const auto* versions = field(key, "versions");
      if (!versions || !versions->is_object()) continue;
      for (const auto& [version, info] : versions->get_object()) {
        auto status = text(field(info, "status"));
        drift |= status != "ok";
        const auto* copies = field(info, "members");
        if (!copies || !copies->is_object()) continue;
        for (const auto& [member, copy] : copies->get_object()) {
          const auto* fp = field(copy, "fingerprint");
          const auto* problem = field(copy, "problem");
          std::string shown = fp ? text(fp) : "";
          if (problem) shown += (shown.empty() ? "(" : " (") + text(problem) + ")";
          rows.push_back({std::string(name), text(field(key, "type")), std::string(version), status, std::string(member), shown});
        }
      }
    }
  }
  if (!o_.json) print_table(rows);
  return drift ? exit_negative : exit_ok;
}

int ctl::audit_hash() {
  o_.operands(1, 1, 2);
  if (arg(1) != "hash") fail("unknown audit command " + arg(1) + " (see hsmctl --help)");
  o_.accept({});
  o_.operands(2, 1, 1);
  json::object body{{"input", arg(2)}};
  print_field(call("POST", "/v1/sys/audit-hash/file", &body), "hash");
  return exit_ok;
}

}  // namespace hsmb::hsmctl
