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

// Claims are checked on a worker started for the check (member::start_alone): a process that
// creates an object on a SoftHSM2 token takes the token's incremented generation counter as its
// own (Generation::commit, src/lib/object_store/Generation.cpp), so it skips the re-index that an
// object another process created just before asked for, until some other process writes again.
// Two brokers each missed the other's claim in CI that way, and both created one key. A process
// that has only read re-indexes on any change.
constexpr std::string_view touch_record = "touch/";

std::string claim_prefix(const std::string& name) { return std::string(reserved_record_prefix) + "claim/" + name + "/"; }

}  // namespace

name_claim::~name_claim() {
  if (!arbiter_) return;
  // Detached: the change that held it has answered; its own broker's next claim does not wait
  // for this (contended() passes over this broker's records, which the admin lock serialises).
  asio::co_spawn(*io_, release_claim(*arbiter_, std::move(record_), budget_, std::move(checker_)), asio::detached);
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
    auto began = ctx_.pool.time().now();
    auto put = co_await typed_call<wire::op::put_metadata>(*arbiter, record, budget);
    if (!put) {
      // It may still land (a call given up on): release it, or it holds the name for ten minutes.
      asio::co_spawn(ctx_.io, release_claim(*arbiter, mine, budget), asio::detached);
      co_return unavailable("cannot claim key \"" + name + "\" on member " + arbiter->name() + ": " + put.error().message);
    }
    // Every claim whose put returned before this check began is in it: of two brokers claiming
    // at once, the one that checks second sees the other's.
    auto seen = co_await contended(*arbiter, name);
    if (seen && !seen->contended) {
      // What the arbiter holds for this name is the latest word (another broker may have changed it).
      co_await directory_.merge_records(*arbiter, seen->records, name);
      co_return name_claim(ctx_.io, *arbiter, std::move(mine), budget, std::move(seen->checker));
    }
    co_await release_claim(*arbiter, mine, budget);
    if (!seen) co_return unavailable("cannot list keys on member " + arbiter->name());
    if (ctx_.pool.time().now() > deadline)
      co_return unavailable("another broker is changing key \"" + name + "\"; try again");
    // Spread over a few checks' time (a check starts a worker), so two brokers' retries part.
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(ctx_.pool.time().now() - began).count();
    backoff.expires_after(std::chrono::milliseconds(ctx_.pool.random().between(10, std::max<long long>(100, 3 * took))));
    co_await backoff.async_wait(asio::use_awaitable);
  }
}

awaitable<std::optional<name_claims::claim_view>> name_claims::contended(member& arbiter, const std::string& name) {
  auto budget = ctx_.pool.request_timeout();
  auto fresh = co_await arbiter.start_alone(budget);
  if (!fresh) {
    spdlog::warn("member {}: cannot start a worker to check claims: {}", arbiter.name(), fresh.error().message);
    co_return std::nullopt;
  }
  auto& checker = **fresh;
  wire::empty_payload none;
  auto listed = co_await typed_call<wire::op::list_metadata>(checker, none, budget);
  if (!listed) {
    spdlog::warn("member {}: cannot list claims: {}", arbiter.name(), listed.error().message);
    co_return std::nullopt;
  }
  claim_view view{std::move(listed->records), false, nullptr};
  auto prefix = claim_prefix(name);
  auto own = prefix + instance_ + "-";
  auto now = unix_now();
  for (auto& r : view.records) {
    if (!r.name.starts_with(prefix) || r.name.starts_with(own)) continue;
    auto at = std::strtoll(std::string(as_chars(r.value)).c_str(), nullptr, 10);
    if (now - at < std::chrono::seconds(stale_claim).count()) view.contended = true;  // both in seconds
  }
  if (!view.contended) co_await touch(checker, budget);
  view.checker = std::move(*fresh);
  co_return view;
}

// A write from the checker, which no other process made: every other process, this broker's own
// worker included, re-reads the token at its next find, and so sees what the check saw.
awaitable<void> name_claims::touch(worker_channel& checker, std::chrono::milliseconds budget) {
  auto label = std::string(reserved_record_prefix) + std::string(touch_record) + instance_;
  auto record = claim_request(label, unix_now());
  auto put = co_await typed_call<wire::op::put_metadata>(checker, record, budget);
  auto request = label_request(label);
  if (put) put = co_await typed_call<wire::op::delete_metadata>(checker, request, budget);
  if (!put) spdlog::warn("could not touch the arbiter's records: {}", put.error().message);
}

awaitable<void> release_claim(member& arbiter, std::string record, std::chrono::milliseconds budget,
                              std::unique_ptr<worker_channel> checker) {
  auto request = label_request(record);
  if (checker && checker->alive()) {
    auto r = co_await typed_call<wire::op::delete_metadata>(*checker, request, budget);
    if (r) co_return;
  }
  auto r = co_await typed_call<wire::op::delete_metadata>(arbiter, request, budget);
  if (!r) spdlog::warn("member {}: could not release claim {}: {} (it expires)", arbiter.name(), record, r.error().message);
}

}  // namespace hsmb
