#include "api/auth/gate.h"

#include "api/auth/authenticator.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace hsmb::api {
namespace {

response denied() { return {403, R"({"errors":["permission denied"]})"}; }  // Vault's words, whatever the cause

caller anyone_of(const request& req) {
  caller who{caller_kind::anyone, "anyone", {"root"}};
  if (req.peer) {
    who.uid = req.peer->uid;
    who.gid = req.peer->gid;
    who.pid = req.peer->pid;
  }
  if (req.tls) who.cert_subject = req.tls->subject;
  return who;
}

}  // namespace

gate::gate(std::optional<auth_config> cfg) {
  if (cfg) auth_ = std::make_unique<authenticator>(std::move(*cfg));
}
gate::~gate() = default;
gate::gate(gate&&) noexcept = default;
gate& gate::operator=(gate&&) noexcept = default;

std::optional<response> gate::precheck(const request& req) const {
  if (!auth_ || !auth_->require_request_header() || req.vault_request == "true") return std::nullopt;
  ++counters_.missing_header;
  return response{412, R"({"errors":["missing 'X-Vault-Request' header"]})"};
}

std::optional<response> gate::admit(const request& req, const route_spec& route, const target& t, caller& who) const {
  if (!auth_) {
    who = anyone_of(req);
    return std::nullopt;
  }
  auto id = auth_->identify(req, route.operation == "lookup_self");
  if (!id && !route.unauthenticated) ++counters_.denied;
  if (!id) return route.unauthenticated ? std::nullopt : std::optional<response>(denied());
  who = std::move(id->who);
  if (route.unauthenticated) return std::nullopt;
  if (!id->rights || !id->rights->allows(policy_path(t.segments), route.needs)) {
    ++counters_.denied;
    return denied();
  }
  return id->bound && id->bound->rate ? spend(*id->bound) : std::nullopt;
}

caller gate::unrouted(const request& req) const {
  if (!auth_) return anyone_of(req);
  auto id = auth_->identify(req);
  return id ? std::move(id->who) : caller{};
}

std::optional<response> gate::spend(const binding& b) const {
  auto now = std::chrono::steady_clock::now();
  auto [it, fresh] = buckets_.try_emplace(&b, bucket{double(b.rate->burst), now});
  auto& k = it->second;
  double elapsed = std::chrono::duration<double>(now - k.at).count();
  k.tokens = std::min<double>(b.rate->burst, k.tokens + elapsed * b.rate->per_second);
  k.at = now;
  if (k.tokens >= 1) {
    k.tokens -= 1;
    return std::nullopt;
  }
  ++counters_.rate_limited;
  auto wait = std::max(1L, static_cast<long>(std::ceil((1 - k.tokens) / b.rate->per_second)));
  response r{429, R"({"errors":["rate limit exceeded for this caller; retry after )" + std::to_string(wait) + R"( s"]})"};
  r.retry_after = static_cast<unsigned>(wait);
  return r;
}

}  // namespace hsmb::api
