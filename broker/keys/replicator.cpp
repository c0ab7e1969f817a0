#include "broker/keys/replicator.h"

#include <array>

#include <spdlog/spdlog.h>

#include "broker/keys/worker_requests.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

hsm_error prefixed(hsm_error e, const std::string& where) {
  e.message = where + ": " + e.message;
  return e;
}

}  // namespace

awaitable<hsm_result<void>> replicator::copy_version(member& from, member& to, const key_entry& key, std::uint32_t v) {
  auto type = key.meta.type;
  auto budget = ctx_.pool.request_timeout();
  const std::array<bool, 2> objects{false, true};  // the key, then its HMAC companion
  for (bool companion : objects) {
    if (companion && type == key_type::hmac) break;
    auto label = companion ? hmac_object_label(key.name, v, type) : key_object_label(key.name, v);
    auto object_type = companion ? key_type::hmac : type;
    wire::generate_key_request request{label, object_type};
    auto exported = co_await typed_call<wire::op::export_key>(from, request, budget);
    if (!exported) co_return std::unexpected(prefixed(exported.error(), "export from " + from.name()));
    wire::import_key_request import{label, std::move(*exported)};
    auto imported = co_await typed_call<wire::op::import_key>(to, import, budget);
    if (!imported && imported.error().ckr != ckr_object_exists)
      co_return std::unexpected(prefixed(imported.error(), "import into " + to.name()));
  }
  // The copy (or a copy already there) must be the recorded key: the same check as on join.
  auto recorded = key.meta.fingerprints.find(v);
  if (recorded == key.meta.fingerprints.end()) co_return hsm_result<void>{};
  auto copy = co_await checks_.inspect_copy(to, key.name, v, type);
  if (!copy.fingerprint.empty()) checks_.note_copy(to, key.name, v, recorded->second, copy.fingerprint == recorded->second);
  if (copy.fingerprint == recorded->second) co_return hsm_result<void>{};
  co_return std::unexpected(hsm_error{ckr_copy_mismatch, "the copy on " + to.name() + " of \"" + key.name + "\" v" +
                                                             std::to_string(v) + " differs from the recorded key (" +
                                                             (copy.problem.empty() ? copy.fingerprint : copy.problem) + ")"});
}

awaitable<std::vector<std::size_t>> replicator::spread(const key_entry& key, member& made_on, std::uint32_t v) {
  std::vector<std::size_t> holders{made_on.index()};
  if (!made_on.can_copy(key.meta.type)) co_return holders;
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i) {
    auto& m = ctx_.pool.at(i);
    if (&m == &made_on || m.state() == member_state::down || !m.can_copy(key.meta.type)) continue;
    if (key.held_up_to[i] + 1 != v) continue;  // behind on older versions: its catch-up brings this one too
    auto copied = co_await copy_version(made_on, m, key, v);
    if (copied) holders.push_back(i);
    else spdlog::warn("key \"{}\" v{}: no copy on member {}: {}", key.name, v, m.name(), copied.error().message);
  }
  co_return holders;
}

awaitable<bool> replicator::destroy_copies(member& m, const std::string& name) {
  auto prefix = label_request(key_object_prefix(name));  // named: no temporaries in co_await (GCC 12)
  auto destroyed = co_await typed_call<wire::op::destroy_objects>(m, prefix, ctx_.pool.request_timeout());
  if (!destroyed) spdlog::warn("key \"{}\": objects on member {} not destroyed yet: {}", name, m.name(), destroyed.error().message);
  co_return destroyed.has_value();
}

awaitable<void> replicator::discard(const std::vector<std::size_t>& holders, const std::string& prefix) {
  auto request = label_request(prefix);
  for (std::size_t i : holders) {
    auto r = co_await typed_call<wire::op::destroy_objects>(ctx_.pool.at(i), request, ctx_.pool.request_timeout());
    if (!r) spdlog::warn("member {}: could not remove the unfinished key objects {}: {}", ctx_.pool.at(i).name(), prefix, r.error().message);
  }
}

awaitable<void> replicator::reconcile_member(member& m) {
  auto names = ctx_.catalog.all_names();
  for (auto& name : names) {
    bool go_on = co_await reconcile_key(name, m);
    if (!go_on) {
      spdlog::warn("member {}: key catch-up stopped; it serves the key versions it holds", m.name());
      co_return;
    }
  }
}

awaitable<bool> replicator::reconcile_key(const std::string& name, member& m) {
  auto i = m.index();
  auto* e = ctx_.catalog.find_any(name);
  if (!e) co_return true;
  if (e->meta.deleted) {
    if (e->member_revision[i] == 0 || e->member_revision[i] >= e->meta.revision) co_return true;
    // Deleted while this member was away: remove its copy, leave the tombstone.
    auto meta = e->meta;
    if (!co_await destroy_copies(m, name)) co_return true;  // tried again at the member's next catch-up
    auto record = metadata_request(name, meta);
    auto stored = co_await typed_call<wire::op::put_metadata>(m, record, ctx_.pool.request_timeout());
    if (stored) ctx_.catalog.find_any(name)->set_holding(i, meta);
    co_return true;
  }
  if (!m.can_copy(e->meta.type)) co_return true;
  if (!co_await drop_stale_copies(name, m)) co_return true;
  e = ctx_.catalog.find_any(name);
  if (!e) co_return true;
  for (std::uint32_t v = e->held_up_to[i] + 1; v <= e->meta.latest_version; ++v) {
    member* source = nullptr;
    for (std::size_t j = 0; j < ctx_.pool.size() && !source; ++j)
      if (j != i && ctx_.pool.at(j).usable() && e->usable_on(j, v) && ctx_.pool.at(j).can_copy(e->meta.type))
        source = &ctx_.pool.at(j);
    if (!source) co_return true;  // nobody serving has it now: a later join brings it
    key_entry snapshot = *e;      // the entry may change while the copy runs
    auto copied = co_await copy_version(*source, m, snapshot, v);
    e = ctx_.catalog.find_any(name);
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
    co_await directory_.store_metadata_on(snapshot, target);
  }
  co_return true;
}

// A copy that is not the recorded key, on a member whose older record is of another key of this
// name (its v1 has another fingerprint): what is left of a key deleted and made again while the
// member was away. Its objects go, so that the right versions are copied in their place. A
// differing copy otherwise is drift for an operator (hsmctl sync), and stays.
awaitable<bool> replicator::drop_stale_copies(const std::string& name, member& m) {
  auto i = m.index();
  auto* e = ctx_.catalog.find_any(name);
  // Only a record of another key (its v1 fingerprint differs): a copy that merely differs from
  // the recorded fingerprint on a member that missed a config change is drift, and stays.
  if (!e || e->member_revision[i] >= e->meta.revision || !e->born_elsewhere(i)) co_return true;
  bool stale = false;
  for (std::uint32_t v = 1; v <= e->held_up_to[i]; ++v) stale |= e->copy_differs(i, v);
  if (!stale) co_return true;
  if (!co_await destroy_copies(m, name)) co_return false;  // tried again at the member's next catch-up
  spdlog::info("key \"{}\": member {} held copies of a deleted key of that name; removed", name, m.name());
  e = ctx_.catalog.find_any(name);
  if (!e) co_return false;
  e->held_up_to[i] = 0;
  for (auto& [version, flags] : e->mismatched)
    if (i < flags.size()) flags[i] = false;
  checks_.forget(m, name);
  co_return true;
}

awaitable<void> replicator::forget_missing_copies(member& m) {
  auto i = m.index();
  auto names = ctx_.catalog.names();
  for (auto& name : names) {
    auto* e = ctx_.catalog.find(name);
    if (!e) continue;
    auto type = e->meta.type;
    auto first = std::max<std::uint32_t>(1, e->meta.min_decryption_version);
    for (std::uint32_t v = first, held = e->held_up_to[i]; v <= held; ++v) {
      auto copy = co_await checks_.inspect_copy(m, name, v, type);
      if (copy.problem != "missing") continue;
      if (auto* now = ctx_.catalog.find(name); now && now->held_up_to[i] >= v) now->held_up_to[i] = v - 1;
      spdlog::warn("key \"{}\" v{}: missing on member {}; copying it again", name, v, m.name());
      break;  // held_up_to counts versions 1..N: everything from here is copied again
    }
  }
}

}  // namespace hsmb
