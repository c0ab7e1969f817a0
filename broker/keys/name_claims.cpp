#include "broker/keys/name_claims.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "broker/keys/worker_requests.h"
#include "common/base64.h"
#include "common/duration.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// A claim older than this belongs to a broker that died holding it.
// Longer than any create or rotate can hold a claim: key generation may take 120 s per member
// tried, then copies and records follow. A broker that died holding one delays that name only.
constexpr std::chrono::minutes stale_claim{10};
// How long another process's fresh claim may take to show in a list. 30 ms was not enough in CI
// (2 cores, tests beside a fuzz build): two brokers each missed the other's claim and both
// created the same key. A create or rotate pays this once.
constexpr std::chrono::milliseconds claim_settle{200};

std::string claim_prefix(const std::string& name) { return std::string(reserved_record_prefix) + "claim/" + name + "/"; }

}  // namespace

name_claim::~name_claim() {
  if (!arbiter_) return;
  // Detached: the change that held it has answered; its own broker's next claim does not wait
  // for this (contended() passes over this broker's records, which the admin lock serialises).
  asio::co_spawn(*io_, release_claim(*arbiter_, std::move(record_), budget_), asio::detached);
}

name_claims::name_claims(key_context& ctx, key_directory& directory)
    : ctx_(ctx), directory_(directory), instance_(token()) {}

std::int64_t name_claims::unix_now() const {
  return std::chrono::duration_cast<std::chrono::seconds>(ctx_.pool.time().system_now().time_since_epoch()).count();
}

std::string name_claims::token() {
  std::uint64_t v = ctx_.pool.random().token();
  return hex_encode(byte_view(reinterpret_cast<const std::uint8_t*>(&v), sizeof v));
}

awaitable<broker_result<name_claim>> name_claims::claim(const std::string& name) {
  // Every broker must pick the same arbiter: the first configured member that is not down, even
  // while it is starting or syncing (the call waits for it), not merely the first serving one.
  member* arbiter = nullptr;
  for (std::size_t i = 0; i < ctx_.pool.size() && !arbiter; ++i)
    if (ctx_.pool.at(i).state() != member_state::down) arbiter = &ctx_.pool.at(i);
  if (!arbiter) co_return unavailable("no member is serving");
  auto mine = claim_prefix(name) + instance_ + "-" + token();
  auto budget = ctx_.pool.request_timeout();
  auto deadline = ctx_.pool.time().now() + budget;
  asio::steady_timer backoff(ctx_.io);
  for (;;) {
    auto record = claim_request(mine, unix_now());
    auto put = co_await typed_call<wire::op::put_metadata>(*arbiter, record, budget);
    if (!put) co_return unavailable("cannot claim key \"" + name + "\" on member " + arbiter->name() + ": " + put.error().message);
    // Look twice, a moment apart: an HSM shared by processes (SoftHSM2's file store) may show
    // another process's fresh record a little late.
    auto first = co_await contended(*arbiter, name);
    std::optional<claim_view> second;
    if (first && !first->contended) {
      backoff.expires_after(claim_settle);
      co_await backoff.async_wait(asio::use_awaitable);
      second = co_await contended(*arbiter, name);
    }
    auto& seen = second ? second : first;
    if (seen && !seen->contended) {
      // What the arbiter holds for this name is the latest word (another broker may have changed it).
      co_await directory_.merge_records(*arbiter, seen->records, name);
      co_return name_claim(ctx_.io, *arbiter, std::move(mine), budget);
    }
    co_await release_claim(*arbiter, mine, budget);
    if (!seen) co_return unavailable("cannot list keys on member " + arbiter->name());
    if (ctx_.pool.time().now() > deadline)
      co_return unavailable("another broker is changing key \"" + name + "\"; try again");
    backoff.expires_after(std::chrono::milliseconds(ctx_.pool.random().between(10, 100)));
    co_await backoff.async_wait(asio::use_awaitable);
  }
}

awaitable<std::optional<name_claims::claim_view>> name_claims::contended(member& arbiter, const std::string& name) {
  auto records = co_await directory_.list_records(arbiter);
  if (!records) co_return std::nullopt;
  claim_view view{std::move(*records), false};
  auto prefix = claim_prefix(name);
  auto own = prefix + instance_ + "-";
  auto now = unix_now();
  for (auto& r : view.records) {
    if (!r.name.starts_with(prefix) || r.name.starts_with(own)) continue;
    auto at = std::strtoll(std::string(as_chars(r.value)).c_str(), nullptr, 10);
    if (now - at < std::chrono::seconds(stale_claim).count()) view.contended = true;  // both in seconds
  }
  co_return view;
}

awaitable<void> release_claim(member& arbiter, std::string record, std::chrono::milliseconds budget) {
  auto request = label_request(record);
  auto r = co_await typed_call<wire::op::delete_metadata>(arbiter, request, budget);
  if (!r) spdlog::warn("member {}: could not release claim {}: {} (it expires)", arbiter.name(), record, r.error().message);
}

}  // namespace hsmb
