// Key replication (replication.mode: broker): copies of each key version travel between members
// wrapped under the cluster key (docs/replication.md), on create and rotate, and when a member
// joins having missed changes. Also the cross-broker claim that keeps creates idempotent.
#include <array>
#include <chrono>
#include <random>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "broker/key_payloads.h"
#include "broker/key_service.h"
#include "common/base64.h"
#include "common/duration.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// A claim older than this belongs to a broker that died holding it.
// Longer than any create or rotate can hold a claim: key generation may take 120 s per member
// tried, then copies and records follow. A broker that died holding one delays that name only.
constexpr std::chrono::minutes stale_claim{10};
constexpr std::chrono::milliseconds claim_settle{30};

std::string claim_prefix(const std::string& name) { return std::string(reserved_record_prefix) + "claim/" + name + "/"; }

std::string random_token() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t v = rng();
  return hex_encode(byte_view(reinterpret_cast<const std::uint8_t*>(&v), sizeof v));
}

}  // namespace

awaitable<hsm_result<void>> key_service::copy_version(member& from, member& to, const key_entry& key, std::uint32_t v) {
  auto type = key.meta.type;
  auto budget = pool_.request_timeout();
  const std::array<bool, 2> objects{false, true};  // the key, then its HMAC companion
  for (bool companion : objects) {
    if (companion && type == key_type::hmac) break;
    auto label = companion ? hmac_object_label(key.name, v, type) : key_object_label(key.name, v);
    auto object_type = companion ? key_type::hmac : type;
    bytes request;
    wire::encode_generate_key(request, label, object_type);
    auto exported = co_await from.call(wire::op::export_key, request, budget);
    if (!exported) co_return std::unexpected(hsm_error{exported.error().ckr, "export from " + from.name() + ": " + exported.error().message});
    bytes import;  // import_key is the label followed by export_key's answer, as is
    wire::encode_label(import, label);
    import.insert(import.end(), exported->begin(), exported->end());
    auto imported = co_await to.call(wire::op::import_key, import, budget);
    if (!imported && imported.error().ckr != ckr_object_exists)
      co_return std::unexpected(hsm_error{imported.error().ckr, "import into " + to.name() + ": " + imported.error().message});
  }
  // The copy (or a copy already there) must be the recorded key: the same check as on join.
  auto recorded = key.meta.fingerprints.find(v);
  if (recorded == key.meta.fingerprints.end()) co_return hsm_result<void>{};
  auto copy = co_await inspect_copy(to, key.name, v, type);
  if (!copy.fingerprint.empty()) note_copy(to, key.name, v, recorded->second, copy.fingerprint == recorded->second);
  if (copy.fingerprint == recorded->second) co_return hsm_result<void>{};
  co_return std::unexpected(hsm_error{ckr_copy_mismatch, "the copy on " + to.name() + " of \"" + key.name + "\" v" +
                                                             std::to_string(v) + " differs from the recorded key (" +
                                                             (copy.problem.empty() ? copy.fingerprint : copy.problem) + ")"});
}

awaitable<std::vector<std::size_t>> key_service::spread(const key_entry& key, member& made_on, std::uint32_t v) {
  std::vector<std::size_t> holders{made_on.index()};
  if (!made_on.can_copy(key.meta.type)) co_return holders;
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    auto& m = pool_.at(i);
    if (&m == &made_on || m.state() == member_state::down || !m.can_copy(key.meta.type)) continue;
    if (key.held_up_to[i] + 1 != v) continue;  // behind on older versions: its catch-up brings this one too
    auto copied = co_await copy_version(made_on, m, key, v);
    if (copied) holders.push_back(i);
    else spdlog::warn("key \"{}\" v{}: no copy on member {}: {}", key.name, v, m.name(), copied.error().message);
  }
  co_return holders;
}

awaitable<void> key_service::discard(const std::vector<std::size_t>& holders, const std::string& prefix) {
  auto request = payload_of_label(prefix);
  for (std::size_t i : holders) {
    auto r = co_await pool_.at(i).call(wire::op::destroy_objects, request, pool_.request_timeout());
    if (!r) spdlog::warn("member {}: could not remove the unfinished key objects {}: {}", pool_.at(i).name(), prefix, r.error().message);
  }
}

awaitable<bool> key_service::reconcile_key(const std::string& name, member& m) {
  auto i = m.index();
  auto* e = catalog_.find_any(name);
  if (!e) co_return true;
  if (e->meta.deleted) {
    if (e->member_revision[i] == 0 || e->member_revision[i] >= e->meta.revision) co_return true;
    // Deleted while this member was away: remove its copy, leave the tombstone.
    auto meta = e->meta;
    auto prefix = payload_of_label(key_object_prefix(name));  // named: no temporaries in co_await (GCC 12)
    auto destroyed = co_await m.call(wire::op::destroy_objects, prefix, pool_.request_timeout());
    if (!destroyed) co_return true;  // tried again at the member's next catch-up
    auto record = payload_of_record(name, meta);
    auto stored = co_await m.call(wire::op::put_metadata, record, pool_.request_timeout());
    if (stored) catalog_.find_any(name)->set_holding(i, meta);
    co_return true;
  }
  if (!m.can_copy(e->meta.type)) co_return true;
  if (!co_await drop_stale_copies(name, m)) co_return true;
  e = catalog_.find_any(name);
  if (!e) co_return true;
  for (std::uint32_t v = e->held_up_to[i] + 1; v <= e->meta.latest_version; ++v) {
    member* source = nullptr;
    for (std::size_t j = 0; j < pool_.size() && !source; ++j)
      if (j != i && pool_.at(j).usable() && e->usable_on(j, v) && pool_.at(j).can_copy(e->meta.type))
        source = &pool_.at(j);
    if (!source) co_return true;  // nobody serving has it now: a later join brings it
    key_entry snapshot = *e;      // the entry may change while the copy runs
    auto copied = co_await copy_version(*source, m, snapshot, v);
    e = catalog_.find_any(name);
    if (!copied) {
      spdlog::warn("key \"{}\" v{}: catch-up of member {} failed: {}", name, v, m.name(), copied.error().message);
      co_return copied.error().ckr != ckr_no_cluster_key && !is_device_error(copied.error());
    }
    if (!e) co_return true;
    e->held_up_to[i] = v;
    spdlog::info("key \"{}\" v{}: copied from {} to {}", name, v, source->name(), m.name());
  }
  if (e->held_up_to[i] == e->meta.latest_version && e->member_revision[i] < e->meta.revision) {
    key_entry snapshot = *e;
    std::vector<std::size_t> target{i};
    co_await store_metadata_on(snapshot, target);
  }
  co_return true;
}

// A copy that is not the recorded key, on a member whose older record is of another key of this
// name (its v1 has another fingerprint): what is left of a key deleted and made again while the
// member was away. Its objects go, so that the right versions are copied in their place. A
// differing copy otherwise is drift for an operator (hsmctl sync), and stays.
awaitable<bool> key_service::drop_stale_copies(const std::string& name, member& m) {
  auto i = m.index();
  auto* e = catalog_.find_any(name);
  // Only a record of another key (its v1 fingerprint differs): a copy that merely differs from
  // the recorded fingerprint on a member that missed a config change is drift, and stays.
  if (!e || e->member_revision[i] >= e->meta.revision || !e->born_elsewhere(i)) co_return true;
  bool stale = false;
  for (std::uint32_t v = 1; v <= e->held_up_to[i]; ++v) stale |= e->copy_differs(i, v);
  if (!stale) co_return true;
  auto prefix = payload_of_label(key_object_prefix(name));  // named: no temporaries in co_await (GCC 12)
  auto destroyed = co_await m.call(wire::op::destroy_objects, prefix, pool_.request_timeout());
  if (!destroyed) co_return false;  // tried again at the member's next catch-up
  spdlog::info("key \"{}\": member {} held copies of a deleted key of that name; removed", name, m.name());
  e = catalog_.find_any(name);
  if (!e) co_return false;
  e->held_up_to[i] = 0;
  for (auto& [version, flags] : e->mismatched)
    if (i < flags.size()) flags[i] = false;
  std::erase_if(checked_[i], [&](auto& c) { return std::get<0>(c) == name; });
  co_return true;
}

awaitable<void> key_service::forget_missing_copies(member& m) {
  auto i = m.index();
  auto names = catalog_.names();
  for (auto& name : names) {
    auto* e = catalog_.find(name);
    if (!e) continue;
    auto type = e->meta.type;
    auto first = std::max<std::uint32_t>(1, e->meta.min_decryption_version);
    for (std::uint32_t v = first, held = e->held_up_to[i]; v <= held; ++v) {
      auto copy = co_await inspect_copy(m, name, v, type);
      if (copy.problem != "missing") continue;
      if (auto* now = catalog_.find(name); now && now->held_up_to[i] >= v) now->held_up_to[i] = v - 1;
      spdlog::warn("key \"{}\" v{}: missing on member {}; copying it again", name, v, m.name());
      break;  // held_up_to counts versions 1..N: everything from here is copied again
    }
  }
}

awaitable<void> key_service::reconcile_member(member& m) {
  auto names = catalog_.all_names();
  for (auto& name : names) {
    bool go_on = co_await reconcile_key(name, m);
    if (!go_on) {
      spdlog::warn("member {}: key catch-up stopped; it serves the key versions it holds", m.name());
      co_return;
    }
  }
}

awaitable<broker_result<key_service::name_claim>> key_service::claim(const std::string& name) {
  // Every broker must pick the same arbiter: the first configured member that is not down, even
  // while it is starting or syncing (the call waits for it), not merely the first serving one.
  member* arbiter = nullptr;
  for (std::size_t i = 0; i < pool_.size() && !arbiter; ++i)
    if (pool_.at(i).state() != member_state::down) arbiter = &pool_.at(i);
  if (!arbiter) co_return unavailable("no member is serving");
  name_claim c{arbiter, claim_prefix(name) + random_token()};
  auto budget = pool_.request_timeout();
  auto deadline = std::chrono::steady_clock::now() + budget;
  static thread_local std::mt19937 rng{std::random_device{}()};
  asio::steady_timer backoff(io_);
  for (;;) {
    auto record = payload_of_claim(c.record, unix_seconds_now());
    auto put = co_await arbiter->call(wire::op::put_metadata, record, budget);
    if (!put) co_return unavailable("cannot claim key \"" + name + "\" on member " + arbiter->name() + ": " + put.error().message);
    // Look twice, a moment apart: an HSM shared by processes (SoftHSM2's file store) may show
    // another process's fresh record a little late.
    auto first = co_await contended(*arbiter, name, c.record);
    std::optional<claim_view> second;
    if (first && !first->contended) {
      backoff.expires_after(claim_settle);
      co_await backoff.async_wait(asio::use_awaitable);
      second = co_await contended(*arbiter, name, c.record);
    }
    auto& seen = second ? second : first;
    if (!seen) {
      co_await release(c);
      co_return unavailable("cannot list keys on member " + arbiter->name());
    }
    if (!seen->contended) {
      // What the arbiter holds for this name is the latest word (another broker may have changed it).
      co_await merge_records(*arbiter, seen->records, name);
      co_return c;
    }
    co_await release(c);
    if (std::chrono::steady_clock::now() > deadline)
      co_return unavailable("another broker is changing key \"" + name + "\"; try again");
    backoff.expires_after(std::chrono::milliseconds(std::uniform_int_distribution<int>(10, 100)(rng)));
    co_await backoff.async_wait(asio::use_awaitable);
  }
}

awaitable<std::optional<key_service::claim_view>> key_service::contended(member& arbiter, const std::string& name,
                                                                          const std::string& mine) {
  auto records = co_await list_records(arbiter);
  if (!records) co_return std::nullopt;
  claim_view view{std::move(*records), false};
  auto prefix = claim_prefix(name);
  auto now = unix_seconds_now();
  for (auto& r : view.records) {
    if (!r.name.starts_with(prefix) || r.name == mine) continue;
    auto at = std::strtoll(std::string(as_chars(r.value)).c_str(), nullptr, 10);
    if (now - at < stale_claim.count()) view.contended = true;
  }
  co_return view;
}

awaitable<void> key_service::release(const name_claim& c) {
  auto request = payload_of_label(c.record);
  auto r = co_await c.arbiter->call(wire::op::delete_metadata, request, pool_.request_timeout());
  if (!r) spdlog::warn("member {}: could not release claim {}: {} (it expires)", c.arbiter->name(), c.record, r.error().message);
}

}  // namespace hsmb
