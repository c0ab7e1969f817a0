#include "api/metrics/prometheus.h"

#include <cstdio>
#include <functional>

namespace hsmb::api {
namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ").append(name).append(" ").append(type).append("\n");
}

// `labels` is `member="a",op="sign"` (already escaped: member names, route and op names are plain).
void sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(number(value)).append("\n");
}

void histogram(std::string& out, std::string_view name, const std::string& labels, const latency_histogram& h) {
  std::uint64_t cumulative = 0;
  std::string bucket = std::string(name) + "_bucket";
  std::string sep = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < latency_histogram::bounds.size(); ++i) {
    cumulative += h.bucket(i);
    sample(out, bucket, labels + sep + "le=\"" + number(latency_histogram::bounds[i]) + "\"", double(cumulative));
  }
  cumulative += h.bucket(latency_histogram::bounds.size());
  sample(out, bucket, labels + sep + "le=\"+Inf\"", double(cumulative));
  sample(out, std::string(name) + "_sum", labels, h.sum_seconds());
  sample(out, std::string(name) + "_count", labels, double(cumulative));
}

// A Prometheus label value: backslash, quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void member_families(std::string& out, const std::vector<member_snapshot>& members) {
  struct family {
    const char *name, *type, *help;
    std::function<double(const member_snapshot&)> value;
  };
  const family families[] = {
      {"hsmb_member_up", "gauge", "1 while the member serves", [](auto& m) { return m.state == member_state::serving ? 1.0 : 0.0; }},
      {"hsmb_member_in_flight", "gauge", "calls waiting for the member", [](auto& m) { return double(m.in_flight); }},
      {"hsmb_member_latency_p99_seconds", "gauge", "recent p99 call latency (last 10 s)", [](auto& m) { return m.p99_ms / 1000.0; }},
      {"hsmb_member_requests_total", "counter", "calls sent to the member", [](auto& m) { return double(m.requests); }},
      {"hsmb_member_errors_total", "counter", "member failures (device-class errors, crashes, timeouts)", [](auto& m) { return double(m.errors); }},
      {"hsmb_member_failovers_total", "counter", "requests that left the member after a failure", [](auto& m) { return double(m.failovers); }},
      {"hsmb_member_hedges_total", "counter", "times the member was too slow and a hedge went elsewhere", [](auto& m) { return double(m.hedges); }},
      {"hsmb_member_worker_restarts_total", "counter", "workers replaced after a failure", [](auto& m) { return double(m.worker_restarts); }},
      {"hsmb_member_worker_recycles_total", "counter", "workers replaced by age", [](auto& m) { return double(m.worker_recycles); }},
      {"hsmb_member_probes_total", "counter", "health probes sent", [](auto& m) { return double(m.probes); }},
  };
  for (auto& f : families) {
    header(out, f.name, f.type, f.help);
    for (auto& m : members) sample(out, f.name, "member=\"" + label(m.name) + "\"", f.value(m));
  }
}

void member_latency(std::string& out, member_pool& pool) {
  constexpr std::string_view name = "hsmb_member_call_duration_seconds";
  header(out, name, "histogram", "duration of the calls to a member, by operation (HSM and worker time)");
  for (std::size_t i = 0; i < pool.size(); ++i) {
    auto& m = pool.at(i);
    for (std::uint16_t code = 1; code <= wire::max_op_code; ++code) {
      auto op = static_cast<wire::op>(code);
      auto& h = m.latency_of(op);
      if (wire::op_name(op).empty() || h.count() == 0) continue;  // a series appears once it has samples
      histogram(out, name, "member=\"" + label(m.name()) + "\",op=\"" + std::string(wire::op_name(op)) + "\"", h);
    }
  }
}

void request_families(std::string& out, const route_table& routes, const request_metrics& requests) {
  auto route_name = [&](std::size_t r) {
    return r < routes.routes().size() ? std::string(routes.routes()[r].operation) : std::string("unmatched");
  };
  header(out, "hsmb_requests_total", "counter", "HTTP requests answered, by route and status code");
  for (std::size_t r = 0; r <= requests.routes(); ++r)
    for (std::size_t c = 0; c <= request_metrics::other_code; ++c)
      if (auto n = requests.count(r, c)) {
        auto code = c < request_metrics::codes.size() ? std::to_string(request_metrics::codes[c]) : std::string("other");
        sample(out, "hsmb_requests_total", "route=\"" + route_name(r) + "\",code=\"" + code + "\"", double(n));
      }
  header(out, "hsmb_request_duration_seconds", "histogram", "time from a request's arrival at the routes to its answer, by route");
  for (std::size_t r = 0; r <= requests.routes(); ++r)
    if (requests.duration(r).count() > 0)
      histogram(out, "hsmb_request_duration_seconds", "route=\"" + route_name(r) + "\"", requests.duration(r));
}

void counter(std::string& out, std::string_view name, std::string_view help, std::uint64_t value) {
  header(out, name, "counter", help);
  sample(out, name, "", double(value));
}

}  // namespace

std::string prometheus_text(const metrics_sources& from) {
  std::string out;
  out.reserve(16384);
  member_families(out, from.pool.snapshots());
  member_latency(out, from.pool);
  request_families(out, from.routes, from.requests);
  counter(out, "hsmb_auth_denied_total", "requests refused with 403 by the callers' policies", from.gate.denied);
  counter(out, "hsmb_rate_limited_total", "requests refused with 429 by a caller's rate", from.gate.rate_limited);
  counter(out, "hsmb_missing_request_header_total", "requests refused with 412 (auth.require_request_header)",
          from.gate.missing_header);
  audit::audit_counters none;
  auto& audit = from.audit ? *from.audit : none;
  counter(out, "hsmb_audit_lines_total", "audit lines written", audit.lines);
  counter(out, "hsmb_audit_write_failures_total", "audit lines that could not be written", audit.failures);
  counter(out, "hsmb_audit_refused_total", "requests refused with 503 because they could not be audited (fail_closed)",
          audit.refused);
  return out;
}

}  // namespace hsmb::api
