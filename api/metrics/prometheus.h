// /metrics: Prometheus text format (version 0.0.4) of the members' state and call latencies, the
// requests by route and status, and the audit trail's and the callers' gate's counters.
#pragma once

#include <string>

#include "api/audit/audit_log.h"
#include "api/auth/gate.h"
#include "api/metrics/request_metrics.h"
#include "api/transit/route_table.h"
#include "broker/member_pool.h"

namespace hsmb::api {

struct metrics_sources {
  member_pool& pool;
  const route_table& routes;
  const request_metrics& requests;
  const gate_counters& gate;
  const audit::audit_counters* audit;  // nullptr without audit.file
};

std::string prometheus_text(const metrics_sources& from);

}  // namespace hsmb::api
