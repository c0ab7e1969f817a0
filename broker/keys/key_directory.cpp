#include "broker/keys/key_directory.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "broker/keys/worker_requests.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// Anyone can ask for any name: re-reads of the members for unknown names begin at most this often.
constexpr std::chrono::milliseconds refresh_spacing{250};
// How long a name found on no member is answered 404 without another look.
constexpr std::chrono::seconds absent_memory{1};
using clock = std::chrono::steady_clock;

// Not known yet, or not known anywhere: a look elsewhere may still find it.
bool is_absence(const broker_error& e) { return e.kind == error_kind::not_found || e.kind == error_kind::unavailable; }

broker_error key_not_found(std::string_view name) {
  return {error_kind::not_found, error_origin::caller, "key \"" + std::string(name) + "\" not found"};
}

std::string key_and_version(std::string_view name, std::uint32_t version) {
  auto key = "key \"" + std::string(name) + "\"";
  return version ? "version " + std::to_string(version) + " of " + key : key;
}

}  // namespace

awaitable<bool> key_directory::load_from(member& m) {
  auto lock = co_await ctx_.admin.lock();  // a delete must not be undone by a stale listing
  auto records = co_await list_records(m);
  if (!records) co_return false;
  // A member that lost keys (a replaced, empty HSM) must not keep looking like a holder.
  auto known = ctx_.catalog.all_names();
  for (auto& name : known)
    if (auto* e = ctx_.catalog.find_any(name)) e->set_holding(m.index(), key_metadata{.latest_version = 0, .revision = 0});
  auto keys = co_await merge_records(m, *records, {}, true);
  if (!read_[m.index()]) spdlog::info("key records read from member {}: {} keys", m.name(), keys);
  read_[m.index()] = true;
  co_return true;
}

awaitable<void> key_directory::fetch_public_keys(member& m, const std::string& name) {
  auto* e = ctx_.catalog.find(name);
  if (!e || !is_asymmetric(e->meta.type)) co_return;
  auto type = e->meta.type;
  auto latest = std::min(e->meta.latest_version, e->held_up_to[m.index()]);
  for (std::uint32_t v = 1; v <= latest; ++v) {
    if (auto* k = ctx_.catalog.find(name); k == nullptr || k->public_keys.count(v)) continue;
    auto request = label_request(key_object_label(name, v));
    auto blob = co_await typed_call<wire::op::public_key>(m, request, ctx_.pool.request_timeout());
    if (!blob) continue;  // not on this member: another holder supplies it
    auto pk = make_public_key(*blob, type);
    if (auto* k = ctx_.catalog.find(name); k && pk) k->public_keys.emplace(v, std::move(*pk));
  }
}

awaitable<std::optional<std::vector<metadata_record>>> key_directory::list_records(member& m) {
  wire::empty_payload none;
  auto listed = co_await typed_call<wire::op::list_metadata>(m, none, ctx_.pool.request_timeout());
  if (!listed) {
    spdlog::warn("member {}: cannot list keys: {}", m.name(), listed.error().message);
    co_return std::nullopt;
  }
  co_return std::move(listed->records);
}

awaitable<std::size_t> key_directory::merge_records(member& m, const std::vector<metadata_record>& records,
                                                   std::string_view only, bool joining) {
  std::size_t merged = 0;
  for (auto& r : records) {
    if (r.name.starts_with(reserved_record_prefix) || (!only.empty() && r.name != only)) continue;  // claims
    auto meta = decode_metadata(r.value);
    if (!meta) {
      if (joining) spdlog::error("member {}: metadata of key \"{}\" is damaged; key not served from this member", m.name(), r.name);
      continue;
    }
    ctx_.catalog.merge_from_member(m.index(), r.name, *meta);
    ++merged;
    if (meta->deleted) continue;
    if (joining) co_await checks_.check_copies(m, r.name);
    co_await fetch_public_keys(m, r.name);
  }
  co_return merged;
}

std::vector<member*> key_directory::unread() const {
  std::vector<member*> out;
  bool any_read = std::find(read_.begin(), read_.end(), true) != read_.end();
  if (ctx_.mode == replication_mode::none && any_read) return out;  // each member holds every key
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i)
    if (!read_[i]) out.push_back(&ctx_.pool.at(i));
  return out;
}

std::string key_directory::describe_unread() const {
  std::string out;
  for (auto* m : unread()) {
    auto snap = m->snapshot();
    out += (out.empty() ? "" : ", ") + m->name() + " (" + std::string(to_string(snap.state));
    if (snap.last_error) out += ": " + snap.last_error->message;
    out += ")";
  }
  return out;
}

broker_error key_directory::absent(std::string_view name, std::uint32_t version) const {
  if (unread().empty()) return key_not_found(name);
  return {error_kind::unavailable, error_origin::device, key_and_version(name, version) + " is not on any member read so far; members not read yet: " +
                   describe_unread()};
}

broker_result<key_entry*> key_directory::existing(std::string_view name) {
  if (!valid_key_name(name)) return invalid_input("invalid key name \"" + std::string(name) + "\"");
  auto* e = ctx_.catalog.find(name);
  if (!e) return std::unexpected(absent(name));
  return e;
}

awaitable<broker_result<key_entry*>> key_directory::lookup(std::string_view name, std::uint32_t version) {
  auto asked = ctx_.pool.time().now();
  auto deadline = asked + ctx_.pool.request_timeout();
  auto known = [&](const broker_result<key_entry*>& r) { return r ? version <= (*r)->meta.latest_version : !is_absence(r.error()); };
  auto found = existing(name);
  if (known(found)) co_return found;
  // A name just looked for everywhere and not found is not looked for again at once: a typo in a
  // loop, or a batch of 1000 items naming it, costs one re-read of the members, not one each.
  if (auto it = absent_at_.find(name); !found && it != absent_at_.end() && asked - it->second < absent_memory)
    co_return found;
  co_await refresh_since(asked, deadline);  // another broker may have made it
  found = existing(name);
  if (!found && found.error().kind == error_kind::not_found) {
    if (absent_at_.size() >= 4096) absent_at_.clear();  // anyone can ask for any name: bounded
    absent_at_.insert_or_assign(std::string(name), asked);
  }
  if (known(found) || unread().empty()) co_return found;
  co_await wait_for_unread(deadline);  // members still starting may hold it
  found = existing(name);
  if (found && !known(found) && !unread().empty()) co_return std::unexpected(absent(name, version));
  co_return found;
}

awaitable<void> key_directory::wait_for_unread(clock::time_point deadline) {
  auto settled = [this] {
    auto pending = unread();
    return std::all_of(pending.begin(), pending.end(), [](member* m) { return m->settled(); });
  };
  co_await ctx_.pool.wait_until(settled, deadline);
}

awaitable<void> key_directory::refresh_since(clock::time_point asked, clock::time_point deadline) {
  while (refreshed_since_ < asked && ctx_.pool.time().now() < deadline) {
    auto now = ctx_.pool.time().now();
    if (!refreshing_ && now >= refresh_began_ + refresh_spacing) {
      refreshing_ = true;
      refresh_began_ = now;
      struct done_guard {  // whatever happens, the next re-read may begin and the waiters wake
        key_directory* self;
        clock::time_point began;
        ~done_guard() {
          self->refreshing_ = false;
          self->refreshed_since_ = began;
          self->refresh_waiters_.wake_all();
        }
      } guard{this, now};
      co_await refresh();
      continue;
    }
    // A re-read is running (its end wakes us), or the last began too recently (wait for the slot).
    auto until = refreshing_ ? deadline : std::min(deadline, refresh_began_ + refresh_spacing);
    co_await refresh_waiters_.wait_for(until - ctx_.pool.time().now());  // a duration: the pool's clock may be a test's
  }
}

// Another broker (the other generation of a hand-off, a sidecar sharing the HSMs) may have made
// a key or version this one has not seen: every serving member's records are read again, since a
// key that cannot be copied lives on one member only.
// No ctx_.admin lock: merging keeps the highest revision of each record, and a create or a member's
// catch-up holding the lock for minutes must not hold up every lookup of an unknown name.
awaitable<void> key_directory::refresh() {
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i) {
    auto& m = ctx_.pool.at(i);
    if (!m.usable()) continue;
    auto records = co_await list_records(m);
    if (records) co_await merge_records(m, *records);
  }
}

awaitable<broker_result<std::vector<std::size_t>>> key_directory::store_metadata_on(const key_entry& key,
                                                                                const std::vector<std::size_t>& targets) {
  auto record = metadata_request(key.name, key.meta);
  std::vector<std::size_t> stored;
  std::string failures;
  for (std::size_t i : targets) {
    auto r = co_await typed_call<wire::op::put_metadata>(ctx_.pool.at(i), record, ctx_.pool.request_timeout());
    if (!r) {
      failures += ctx_.pool.at(i).name() + ": " + r.error().message + "; ";
      continue;
    }
    stored.push_back(i);
    // Only onto the entry this record belongs to (not a tombstone a create is replacing).
    if (auto* e = ctx_.catalog.find_any(key.name); e && e->meta.revision <= key.meta.revision && !e->meta.deleted)
      e->member_revision[i] = key.meta.revision;
  }
  if (stored.empty()) co_return unavailable("could not store key metadata on any member: " + failures);
  co_return stored;
}

std::vector<std::size_t> key_directory::write_targets(const key_entry& key) const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i) {
    bool serving = ctx_.pool.at(i).usable();
    if (ctx_.mode == replication_mode::none) {
      if (serving) return {i};
    } else if (serving && key.held_up_to[i] == key.meta.latest_version) {
      out.push_back(i);  // a member behind on versions gets the record once it caught up
    }
  }
  return out;
}

}  // namespace hsmb
