#include "broker/key_service.h"

#include <openssl/crypto.h>

#include <chrono>
#include <functional>
#include <set>

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <spdlog/spdlog.h>

#include "broker/key_payloads.h"
#include "broker/keys/signature.h"
#include "common/base64.h"
#include "broker/keys/versioned_value.h"
#include "common/duration.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// RSA-4096 generation takes seconds on SoftHSM2 and on many real HSMs: not a hang.
constexpr std::chrono::seconds key_generation_timeout{120};
// Anyone can ask for any name: re-reads of the members for unknown names begin at most this often.
constexpr std::chrono::milliseconds refresh_spacing{250};
// How long a name found on no member is answered 404 without another look.
constexpr std::chrono::seconds absent_memory{1};
using clock = std::chrono::steady_clock;

// Not known yet, or not known anywhere: a look elsewhere may still find it.
bool is_absence(const broker_error& e) { return e.kind == error_kind::not_found || e.kind == error_kind::unavailable; }

// Creating a name again is idempotent only with the same type.
std::unexpected<broker_error> exists_with_type(const std::string& name, key_type type) {
  return invalid_input("key \"" + name + "\" already exists with type " + std::string(to_string(type)));
}

template <class Encode>
bytes payload(Encode&& encode) {
  bytes out;
  encode(out);
  return out;
}

broker_error key_not_found(std::string_view name) {
  return {error_kind::not_found, error_origin::caller, "key \"" + std::string(name) + "\" not found"};
}

std::string key_and_version(std::string_view name, std::uint32_t version) {
  auto key = "key \"" + std::string(name) + "\"";
  return version ? "version " + std::to_string(version) + " of " + key : key;
}

broker_result<std::uint32_t> encryption_version(const key_metadata& m, std::optional<std::uint32_t> requested) {
  std::uint32_t v = requested.value_or(m.latest_version);
  if (v == 0) v = m.latest_version;
  if (v > m.latest_version) return invalid_input("requested version " + std::to_string(v) + " is newer than the latest version");
  if (m.min_encryption_version != 0 && v < m.min_encryption_version)
    return invalid_input("requested version " + std::to_string(v) + " is below the key's min_encryption_version");
  if (v < m.min_decryption_version)
    return invalid_input("requested version " + std::to_string(v) + " is below the key's min_decryption_version");
  return v;
}

broker_result<void> check_decryption_version(const key_metadata& m, std::uint32_t v) {
  if (v > m.latest_version) return invalid_input("invalid key version " + std::to_string(v));
  if (v < m.min_decryption_version) return invalid_input("ciphertext or signature version is disallowed by policy (too old)");
  return {};
}

std::size_t rsa_modulus_bytes(key_type t) {
  return t == key_type::rsa_4096 ? 512 : t == key_type::rsa_3072 ? 384 : 256;
}

sign_mechanism mechanism_for(key_type t, const sign_options& o) {
  if (is_ecdsa(t)) return sign_mechanism::ecdsa;
  if (t == key_type::ed25519) return sign_mechanism::eddsa;
  return o.pkcs1v15 ? sign_mechanism::rsa_pkcs1v15 : sign_mechanism::rsa_pss;
}

// What the HSM signs (and the broker verifies): the message for Ed25519, a digest otherwise.
broker_result<bytes> signing_input(key_type t, byte_view input, const sign_options& o) {
  if (t == key_type::ed25519) {
    if (o.prehashed) return invalid_input("ed25519 keys sign the message itself; prehashed is not supported");
    return bytes(input.begin(), input.end());
  }
  if (o.hash == hash_alg::none) {
    if (!(is_rsa(t) && o.pkcs1v15)) return invalid_input("hash_algorithm none is only allowed with rsa keys and pkcs1v15");
    if (input.size() > rsa_modulus_bytes(t) - 11)  // PKCS#1 v1.5 padding needs 11 bytes
      return invalid_input("input too long for this key: at most " + std::to_string(rsa_modulus_bytes(t) - 11) + " bytes");
    return bytes(input.begin(), input.end());
  }
  if (o.prehashed) {
    if (input.size() != digest_size(o.hash))
      return invalid_input("prehashed input must be " + std::to_string(digest_size(o.hash)) + " bytes for " +
                           std::string(to_string(o.hash)));
    return bytes(input.begin(), input.end());
  }
  auto d = compute_digest(o.hash, input);
  if (!d) return internal("digest computation failed");
  return *d;
}

}  // namespace

key_service::key_service(asio::io_context& io, member_pool& pool, replication_mode mode, std::uint32_t min_copies)
    : io_(io), pool_(pool), mode_(mode), min_copies_(min_copies), catalog_(pool.size()), checked_(pool.size()),
      read_(pool.size(), false) {}

void key_service::attach() {
  for (std::size_t i = 0; i < pool_.size(); ++i)
    pool_.at(i).on_join([this](member& m) -> awaitable<bool> { co_return co_await join(m); });
}

awaitable<bool> key_service::join(member& m) {
  bool loaded = co_await load_from(m);
  if (!loaded) co_return false;
  if (!replicates()) co_return true;
  auto lock = co_await admin_.lock();
  co_await reconcile_member(m);
  // What `m` revealed (keys created while the others were down) goes to the others too.
  for (std::size_t i = 0; i < pool_.size(); ++i)
    if (i != m.index() && pool_.at(i).usable()) co_await reconcile_member(pool_.at(i));
  co_return true;
}

awaitable<void> key_service::reconcile() {
  if (!replicates()) co_return;
  auto lock = co_await admin_.lock();
  for (std::size_t i = 0; i < pool_.size(); ++i)
    if (pool_.at(i).usable()) co_await reconcile_member(pool_.at(i));
}

awaitable<void> key_service::repair() {
  if (!replicates()) co_return;
  {
    auto lock = co_await admin_.lock();
    for (std::size_t i = 0; i < pool_.size(); ++i)
      if (pool_.at(i).usable()) co_await forget_missing_copies(pool_.at(i));
  }
  co_await reconcile();
}

awaitable<void> key_service::fetch_public_keys(member& m, const std::string& name) {
  auto* e = catalog_.find(name);
  if (!e || !is_asymmetric(e->meta.type)) co_return;
  auto type = e->meta.type;
  auto latest = std::min(e->meta.latest_version, e->held_up_to[m.index()]);
  for (std::uint32_t v = 1; v <= latest; ++v) {
    if (auto* k = catalog_.find(name); k == nullptr || k->public_keys.count(v)) continue;
    auto request = payload_of_label(key_object_label(name, v));
    auto reply = co_await m.call(wire::op::public_key, request, pool_.request_timeout());
    if (!reply) continue;  // not on this member: another holder supplies it
    auto blob = wire::decode_public_key(*reply);
    auto pk = blob ? make_public_key(*blob, type) : std::nullopt;
    if (auto* k = catalog_.find(name); k && pk) k->public_keys.emplace(v, std::move(*pk));
  }
}

awaitable<bool> key_service::load_from(member& m) {
  auto lock = co_await admin_.lock();  // a delete must not be undone by a stale listing
  auto records = co_await list_records(m);
  if (!records) co_return false;
  // A member that lost keys (a replaced, empty HSM) must not keep looking like a holder.
  auto known = catalog_.all_names();
  for (auto& name : known)
    if (auto* e = catalog_.find_any(name)) e->set_holding(m.index(), key_metadata{.latest_version = 0, .revision = 0});
  auto keys = co_await merge_records(m, *records, {}, true);
  if (!read_[m.index()]) spdlog::info("key records read from member {}: {} keys", m.name(), keys);
  read_[m.index()] = true;
  co_return true;
}

std::vector<member*> key_service::unread() const {
  std::vector<member*> out;
  bool any_read = std::find(read_.begin(), read_.end(), true) != read_.end();
  if (mode_ == replication_mode::none && any_read) return out;  // each member holds every key
  for (std::size_t i = 0; i < pool_.size(); ++i)
    if (!read_[i]) out.push_back(&pool_.at(i));
  return out;
}

std::string key_service::describe_unread() const {
  std::string out;
  for (auto* m : unread()) {
    auto snap = m->snapshot();
    out += (out.empty() ? "" : ", ") + m->name() + " (" + std::string(to_string(snap.state));
    if (snap.last_error) out += ": " + snap.last_error->message;
    out += ")";
  }
  return out;
}

broker_error key_service::absent(std::string_view name, std::uint32_t version) const {
  if (unread().empty()) return key_not_found(name);
  return {error_kind::unavailable, error_origin::device, key_and_version(name, version) + " is not on any member read so far; members not read yet: " +
                   describe_unread()};
}

broker_result<key_entry*> key_service::existing(std::string_view name) {
  if (!valid_key_name(name)) return invalid_input("invalid key name \"" + std::string(name) + "\"");
  auto* e = catalog_.find(name);
  if (!e) return std::unexpected(absent(name));
  return e;
}

awaitable<broker_result<key_entry>> key_service::read_key(std::string_view name) {
  auto e = co_await lookup(name);
  if (!e) co_return std::unexpected(e.error());
  co_return **e;
}

awaitable<broker_result<key_entry*>> key_service::lookup(std::string_view name, std::uint32_t version) {
  auto asked = clock::now();
  auto deadline = asked + pool_.request_timeout();
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

awaitable<void> key_service::wait_for_unread(clock::time_point deadline) {
  auto settled = [this] {
    auto pending = unread();
    return std::all_of(pending.begin(), pending.end(), [](member* m) { return m->settled(); });
  };
  co_await pool_.wait_until(settled, deadline);
}

awaitable<void> key_service::refresh_since(clock::time_point asked, clock::time_point deadline) {
  while (refreshed_since_ < asked && clock::now() < deadline) {
    auto now = clock::now();
    if (!refreshing_ && now >= refresh_began_ + refresh_spacing) {
      refreshing_ = true;
      refresh_began_ = now;
      struct done_guard {  // whatever happens, the next re-read may begin and the waiters wake
        key_service* self;
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
    co_await refresh_waiters_.wait(refreshing_ ? deadline : std::min(deadline, refresh_began_ + refresh_spacing));
  }
}

// Another broker (the other generation of a hand-off, a sidecar sharing the HSMs) may have made
// a key or version this one has not seen: every serving member's records are read again, since a
// key that cannot be copied lives on one member only.
// No admin_ lock: merging keeps the highest revision of each record, and a create or a member's
// catch-up holding the lock for minutes must not hold up every lookup of an unknown name.
awaitable<void> key_service::refresh() {
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    auto& m = pool_.at(i);
    if (!m.usable()) continue;
    auto records = co_await list_records(m);
    if (records) co_await merge_records(m, *records);
  }
}

awaitable<std::optional<std::vector<metadata_record>>> key_service::list_records(member& m) {
  bytes none;
  auto listed = co_await m.call(wire::op::list_metadata, none, pool_.request_timeout());
  if (!listed) {
    spdlog::warn("member {}: cannot list keys: {}", m.name(), listed.error().message);
    co_return std::nullopt;
  }
  co_return wire::decode_metadata_list(*listed);
}

awaitable<std::size_t> key_service::merge_records(member& m, const std::vector<metadata_record>& records,
                                                   std::string_view only, bool joining) {
  std::size_t merged = 0;
  for (auto& r : records) {
    if (r.name.starts_with(reserved_record_prefix) || (!only.empty() && r.name != only)) continue;  // claims
    auto meta = decode_metadata(r.value);
    if (!meta) {
      if (joining) spdlog::error("member {}: metadata of key \"{}\" is damaged; key not served from this member", m.name(), r.name);
      continue;
    }
    catalog_.merge_from_member(m.index(), r.name, *meta);
    ++merged;
    if (meta->deleted) continue;
    if (joining) co_await check_copies(m, r.name);
    co_await fetch_public_keys(m, r.name);
  }
  co_return merged;
}

awaitable<broker_result<bytes>> key_service::on_holders(const key_entry& key, std::uint32_t version, wire::op op,
                                                     const bytes& data, const capability_set& needed) {
  // Decided now, per member: the entry may change while this request waits. Every operation
  // routed here (encrypt, decrypt, sign, hmac) is safe to send twice, so it may be hedged.
  std::vector<bool> usable(key.held_up_to.size());
  bool held = false, offered = false;
  for (std::size_t i = 0; i < usable.size(); ++i) {
    bool holds = mode_ == replication_mode::none ? !key.copy_differs(i, version) : key.usable_on(i, version);
    // A member that lacks the mechanism (p11-kit 0.24 carries no CKM_SHA224_HMAC) is never asked.
    usable[i] = holds && pool_.at(i).offers(needed);
    held |= holds;
    offered |= usable[i];
  }
  if (held && !offered)
    co_return invalid_input("no member holding " + key_and_version(key.name, version) + " offers " + describe(needed));
  member_filter holds = [usable = std::move(usable), type = key.meta.type](const member& m) {
    return usable[m.index()] && m.supports(type);
  };
  co_return co_await pool_.execute(op, data, holds, repeatable::yes);
}

awaitable<broker_result<public_key_blob>> key_service::generate(member& m, const std::string& label, key_type type) {
  auto request = payload([&](bytes& b) { wire::encode_generate_key(b, label, type); });
  auto reply = co_await m.call(wire::op::generate_key, request, key_generation_timeout, member::pace::slow);
  if (!reply) {
    auto why = try_elsewhere(reply.error()) ? broker_error{error_kind::unavailable, error_origin::device, {}}
                                            : caller_error(reply.error());
    why.message = "key generation on member " + m.name() + " failed: " + reply.error().message;
    co_return std::unexpected(why);
  }
  auto blob = wire::decode_public_key(*reply);
  if (!blob) co_return internal("malformed reply from worker");
  if (type != key_type::hmac) {
    auto companion = payload([&](bytes& b) { wire::encode_generate_key(b, label + "/hmac", key_type::hmac); });
    auto mac = co_await m.call(wire::op::generate_key, companion, key_generation_timeout, member::pace::slow);
    if (!mac) {
      auto cleanup = payload_of_label(label);
      co_await m.call(wire::op::destroy_objects, cleanup, pool_.request_timeout());
      co_return unavailable("hmac key generation on member " + m.name() + " failed: " + mac.error().message);
    }
  }
  co_return *blob;
}

std::vector<std::size_t> key_service::write_targets(const key_entry& key) const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    bool serving = pool_.at(i).usable();
    if (mode_ == replication_mode::none) {
      if (serving) return {i};
    } else if (serving && key.held_up_to[i] == key.meta.latest_version) {
      out.push_back(i);  // a member behind on versions gets the record once it caught up
    }
  }
  return out;
}

awaitable<broker_result<key_service::generated>> key_service::generate_on_any(std::vector<member*> candidates,
                                                                           const std::string& label, key_type type) {
  broker_error last{error_kind::unavailable, error_origin::device, "no member that supports " + std::string(to_string(type)) + " keys is serving"};
  for (member* m : candidates) {
    auto blob = co_await generate(*m, label, type);
    if (blob) co_return generated{m, std::move(*blob)};
    last = blob.error();
    if (last.kind != error_kind::unavailable) break;  // the request's fault, not the member's
  }
  co_return std::unexpected(last);
}

awaitable<broker_result<std::vector<std::size_t>>> key_service::store_metadata_on(const key_entry& key,
                                                                                const std::vector<std::size_t>& targets) {
  auto data = payload_of_record(key.name, key.meta);
  std::vector<std::size_t> stored;
  std::string failures;
  for (std::size_t i : targets) {
    auto r = co_await pool_.at(i).call(wire::op::put_metadata, data, pool_.request_timeout());
    if (!r) {
      failures += pool_.at(i).name() + ": " + r.error().message + "; ";
      continue;
    }
    stored.push_back(i);
    // Only onto the entry this record belongs to (not a tombstone a create is replacing).
    if (auto* e = catalog_.find_any(key.name); e && e->meta.revision <= key.meta.revision && !e->meta.deleted)
      e->member_revision[i] = key.meta.revision;
  }
  if (stored.empty()) co_return unavailable("could not store key metadata on any member: " + failures);
  co_return stored;
}

std::uint32_t key_service::required_copies(key_type type) const {
  if (!replicates()) return 1;
  std::uint32_t able = 0;  // a cluster that cannot copy this type at all would never reach min_copies
  for (std::size_t i = 0; i < pool_.size(); ++i) able += pool_.at(i).can_copy(type) ? 1 : 0;
  return std::max<std::uint32_t>(1, std::min(min_copies_, std::max<std::uint32_t>(able, 1)));
}

std::vector<member*> key_service::generation_candidates(key_type type, const key_entry* existing) {
  std::vector<member*> out;
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    auto& m = pool_.at(i);
    // Not merely serving ones: the first member not down is the claim's arbiter, and a key made (or
    // copied) there is seen by every broker; one still starting or syncing is waited for.
    if (m.state() == member_state::down || !m.supports(type)) continue;
    if (existing && mode_ == replication_mode::broker && existing->held_up_to[i] != existing->meta.latest_version) continue;
    out.push_back(&m);
  }
  // Members that can do everything a key of this type is asked (every HMAC hash) first, so a key
  // that cannot be copied lands where every request for it can be served.
  std::stable_partition(out.begin(), out.end(), [&](member* m) { return m->offers(useful_for(type)); });
  return out;
}

awaitable<broker_result<key_entry>> key_service::create_key(const std::string& name, create_options opts) {
  if (!valid_key_name(name)) co_return invalid_input("invalid key name \"" + name + "\": use 1-128 of A-Z a-z 0-9 _ - .");
  auto known = co_await lookup(name);
  if (!known && known.error().kind != error_kind::not_found) co_return std::unexpected(known.error());  // unread members may hold it
  if (pool_.serving_count() == 0) co_await pool_.wait_any_started(pool_.request_timeout());
  auto lock = co_await admin_.lock();
  if (auto* e = catalog_.find(name)) {
    if (e->meta.type != opts.type)
      co_return exists_with_type(name, e->meta.type);
    co_return *e;  // creation is idempotent by name
  }
  if (!unread().empty()) co_return std::unexpected(absent(name));
  auto claimed = co_await claim(name);
  if (!claimed) co_return std::unexpected(claimed.error());
  auto made = co_await create_claimed(name, opts);
  co_await release(*claimed);
  co_return made;
}

awaitable<broker_result<key_entry>> key_service::create_claimed(const std::string& name, create_options opts) {
  if (auto* e = catalog_.find(name)) {  // another broker created it first: the claim merged its record
    if (e->meta.type != opts.type)
      co_return exists_with_type(name, e->meta.type);
    for (std::size_t i = 0; i < pool_.size() && replicates(); ++i)  // finds (and checks) its copies elsewhere
      if (pool_.at(i).usable()) co_await reconcile_key(name, pool_.at(i));
    co_return *catalog_.find(name);
  }
  auto candidates = generation_candidates(opts.type, nullptr);
  bool any_capable = false;
  for (std::size_t i = 0; i < pool_.size(); ++i) any_capable |= pool_.at(i).supports(opts.type);
  if (candidates.empty() && !any_capable && pool_.serving_count() > 0)
    co_return invalid_input("no member's HSM supports keys of type " + std::string(to_string(opts.type)));
  auto label = key_object_label(name, 1);  // named: no temporaries bound across co_await (GCC 12)
  auto prefix = key_object_prefix(name);
  auto made = co_await generate_on_any(std::move(candidates), label, opts.type);
  if (!made) co_return std::unexpected(made.error());
  key_entry entry;
  entry.name = name;
  entry.meta.type = opts.type;
  entry.meta.created[1] = unix_seconds_now();
  if (auto* tomb = catalog_.find_any(name)) entry.meta.revision = tomb->meta.revision + 1;  // re-created after a delete
  entry.held_up_to.assign(pool_.size(), 0);
  entry.member_revision.assign(pool_.size(), 0);
  entry.member_born.assign(pool_.size(), std::string());
  entry.held_up_to[made->on->index()] = 1;
  if (is_asymmetric(opts.type)) {
    auto pk = make_public_key(made->blob, opts.type);
    if (!pk) co_return internal("the HSM returned a public key the broker cannot read");
    entry.public_keys.emplace(1, std::move(*pk));
  }
  co_await record_fingerprint(entry, *made->on, 1);
  std::vector<std::size_t> holders{made->on->index()};
  if (replicates()) holders = co_await spread(entry, *made->on, 1);  // not inside ?: (GCC 12)
  auto need = required_copies(opts.type);
  if (holders.size() < need) {
    co_await discard(holders, prefix);
    co_return unavailable("key \"" + name + "\" could be stored on " + std::to_string(holders.size()) + " member(s), " +
                            "but replication.min_copies requires " + std::to_string(need) + "; nothing was created");
  }
  for (std::size_t i : holders) entry.held_up_to[i] = 1;
  // Records first, then the catalog: no request can use the key before it is stored for good.
  auto stored = co_await store_metadata_on(entry, holders);
  if (!stored) {
    co_await discard(holders, prefix);
    co_return std::unexpected(stored.error());
  }
  catalog_.erase(name);  // a tombstone's holdings and mismatches belong to the deleted key
  auto& e = catalog_.put(name, entry.meta);
  e.held_up_to = entry.held_up_to;
  e.public_keys = entry.public_keys;
  for (std::size_t i : *stored) e.member_revision[i] = entry.meta.revision;
  spdlog::info("key \"{}\" ({}) created on {} member(s)", name, to_string(opts.type), holders.size());
  co_return *catalog_.find(name);
}

awaitable<broker_result<key_entry>> key_service::rotate_key(const std::string& name) {
  if (auto known = co_await lookup(name); !known) co_return std::unexpected(known.error());
  if (pool_.serving_count() == 0) co_await pool_.wait_any_started(pool_.request_timeout());
  auto lock = co_await admin_.lock();
  auto found = existing(name);
  if (!found) co_return std::unexpected(found.error());
  auto claimed = co_await claim(name);
  if (!claimed) co_return std::unexpected(claimed.error());
  auto rotated = co_await rotate_claimed(name);
  co_await release(*claimed);
  co_return rotated;
}

awaitable<broker_result<key_entry>> key_service::rotate_claimed(const std::string& name) {
  auto found = existing(name);  // again: the claim may have merged another broker's change
  if (!found) co_return std::unexpected(found.error());
  key_entry next = **found;
  auto candidates = generation_candidates(next.meta.type, &next);
  if (candidates.empty()) co_return unavailable("no member holding every version of key \"" + name + "\" is serving; cannot rotate");
  std::uint32_t v = next.meta.latest_version + 1;
  auto label = key_object_label(name, v);  // named: no temporaries bound across co_await (GCC 12)
  auto made = co_await generate_on_any(std::move(candidates), label, next.meta.type);
  if (!made) co_return std::unexpected(made.error());
  if (is_asymmetric(next.meta.type)) {
    auto pk = make_public_key(made->blob, next.meta.type);
    if (!pk) co_return internal("the HSM returned a public key the broker cannot read");
    next.public_keys.insert_or_assign(v, std::move(*pk));
  }
  next.meta.latest_version = v;
  next.meta.created[v] = unix_seconds_now();
  ++next.meta.revision;
  co_await record_fingerprint(next, *made->on, v);
  std::vector<std::size_t> holders{made->on->index()};
  if (replicates()) holders = co_await spread(next, *made->on, v);  // not inside ?: (GCC 12)
  auto need = required_copies(next.meta.type);
  if (holders.size() < need) {
    co_await discard(holders, label);
    co_return unavailable("version " + std::to_string(v) + " of key \"" + name + "\" could be stored on " +
                            std::to_string(holders.size()) + " member(s), but replication.min_copies requires " +
                            std::to_string(need) + "; the key was not rotated");
  }
  for (std::size_t i : holders) next.held_up_to[i] = v;
  if (auto stored = co_await store_metadata_on(next, holders); !stored) {
    co_await discard(holders, label);
    co_return std::unexpected(stored.error());
  }
  auto& e = catalog_.put(name, next.meta);
  e.held_up_to = next.held_up_to;
  e.public_keys = next.public_keys;
  co_return e;
}

awaitable<broker_result<key_entry>> key_service::configure_key(const std::string& name, config_change change) {
  if (auto known = co_await lookup(name); !known) co_return std::unexpected(known.error());
  auto lock = co_await admin_.lock();
  auto found = existing(name);
  if (!found) co_return std::unexpected(found.error());
  key_entry next = **found;
  auto& m = next.meta;
  if (change.min_decryption_version) {
    auto v = *change.min_decryption_version;
    if (v == 0 || v > m.latest_version)
      co_return invalid_input("min_decryption_version must be between 1 and the latest version (" + std::to_string(m.latest_version) + ")");
    m.min_decryption_version = v;
  }
  if (change.min_encryption_version) {
    auto v = *change.min_encryption_version;
    if (v > m.latest_version) co_return invalid_input("min_encryption_version cannot be newer than the latest version");
    m.min_encryption_version = v;
  }
  if (m.min_encryption_version != 0 && m.min_encryption_version < m.min_decryption_version)
    co_return invalid_input("min_encryption_version cannot be below min_decryption_version");
  if (change.deletion_allowed) m.deletion_allowed = *change.deletion_allowed;
  ++m.revision;
  auto targets = write_targets(next);  // named: no temporaries bound across co_await (GCC 12)
  if (auto stored = co_await store_metadata_on(next, targets); !stored) co_return std::unexpected(stored.error());
  co_return catalog_.put(name, m);
}

awaitable<broker_result<void>> key_service::delete_key(const std::string& name) {
  if (auto known = co_await lookup(name); !known) co_return std::unexpected(known.error());
  auto lock = co_await admin_.lock();
  auto found = existing(name);
  if (!found) co_return std::unexpected(found.error());
  key_entry key = **found;
  if (!key.meta.deletion_allowed) co_return invalid_input("deletion is not allowed for this key");
  key.meta.deleted = true;
  ++key.meta.revision;
  auto prefix = payload_of_label(key_object_prefix(name));
  auto record = payload_of_record(name, key.meta);
  bool any = false;
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    auto& m = pool_.at(i);
    if (!m.usable()) continue;  // a member that returns gets the tombstone then
    if (mode_ == replication_mode::none && any) break;
    // The tombstone first: a half-deleted key must not look like a usable one.
    auto r = co_await m.call(wire::op::put_metadata, record, pool_.request_timeout());
    if (!r) {
      // Once one member holds the tombstone the delete has happened: the rest catch up later.
      if (!any) co_return unavailable("could not delete key on member " + m.name() + ": " + r.error().message);
      spdlog::warn("key \"{}\": tombstone not written on member {} yet: {}", name, m.name(), r.error().message);
      continue;
    }
    any = true;
    auto destroyed = co_await m.call(wire::op::destroy_objects, prefix, pool_.request_timeout());
    if (!destroyed) {
      // Left as not done, so this broker's next catch-up of the member destroys them again.
      spdlog::warn("key \"{}\": objects on member {} not destroyed yet: {}", name, m.name(), destroyed.error().message);
      continue;
    }
    catalog_.find_any(name)->set_holding(i, key.meta);
  }
  if (!any) co_return unavailable("no member is serving; key not deleted");
  catalog_.put(name, key.meta);
  spdlog::info("key \"{}\" deleted", name);
  co_return broker_result<void>{};
}

awaitable<broker_result<versioned_output>> key_service::encrypt(std::string_view name, byte_view plaintext, byte_view aad,
                                                             std::optional<std::uint32_t> version) {
  auto found = co_await lookup(name, version.value_or(0));
  if (!found) co_return std::unexpected(found.error());
  auto& key = **found;
  if (!is_symmetric_cipher(key.meta.type))
    co_return invalid_input("key type " + std::string(to_string(key.meta.type)) + " does not support encryption");
  auto v = encryption_version(key.meta, version);
  if (!v) co_return std::unexpected(v.error());
  auto data = payload([&](bytes& b) { wire::encode_cipher(b, key_object_label(name, *v), plaintext, aad); });
  auto reply = co_await on_holders(key, *v, wire::op::encrypt, data, needed_for_cipher());
  secure_wipe(data.data(), data.size());
  if (!reply) co_return std::unexpected(reply.error());
  auto sealed = wire::decode_blob(*reply);
  if (!sealed) co_return internal("malformed reply from worker");
  co_return versioned_output{format_versioned(*v, *sealed), *v};
}

awaitable<broker_result<secure_bytes>> key_service::decrypt(std::string_view name, std::string_view ciphertext, byte_view aad) {
  auto parsed = parse_versioned(ciphertext);
  auto found = co_await lookup(name, parsed ? parsed->version : 0);
  if (!found) co_return std::unexpected(found.error());
  auto& key = **found;
  if (!is_symmetric_cipher(key.meta.type))
    co_return invalid_input("key type " + std::string(to_string(key.meta.type)) + " does not support decryption");
  if (!parsed) co_return invalid_input("invalid ciphertext: expected vault:v<version>:<base64>");
  if (auto ok = check_decryption_version(key.meta, parsed->version); !ok) co_return std::unexpected(ok.error());
  if (parsed->value.size() < 12 + 16) co_return invalid_input("invalid ciphertext: too short");
  auto data = payload([&](bytes& b) { wire::encode_cipher(b, key_object_label(name, parsed->version), parsed->value, aad); });
  auto reply = co_await on_holders(key, parsed->version, wire::op::decrypt, data, needed_for_cipher());
  if (!reply) co_return std::unexpected(reply.error());
  auto plain = wire::decode_blob<secure_bytes>(*reply);
  secure_wipe(reply->data(), reply->size());
  if (!plain) co_return internal("malformed reply from worker");
  co_return std::move(*plain);
}

awaitable<broker_result<versioned_output>> key_service::rewrap(std::string_view name, std::string_view ciphertext,
                                                            byte_view aad, std::optional<std::uint32_t> version) {
  auto plain = co_await decrypt(name, ciphertext, aad);
  if (!plain) co_return std::unexpected(plain.error());
  co_return co_await encrypt(name, *plain, aad, version);
}

awaitable<broker_result<versioned_output>> key_service::sign(std::string_view name, byte_view input, sign_options opts) {
  auto found = co_await lookup(name, opts.key_version.value_or(0));
  if (!found) co_return std::unexpected(found.error());
  auto& key = **found;
  auto type = key.meta.type;
  if (!is_asymmetric(type)) co_return invalid_input("key type " + std::string(to_string(type)) + " does not support signing");
  auto v = encryption_version(key.meta, opts.key_version);
  if (!v) co_return std::unexpected(v.error());
  auto tbs = signing_input(type, input, opts);
  if (!tbs) co_return std::unexpected(tbs.error());
  auto mech = mechanism_for(type, opts);
  auto data = payload([&](bytes& b) { wire::encode_sign(b, key_object_label(name, *v), mech, opts.hash, *tbs); });
  auto reply = co_await on_holders(key, *v, wire::op::sign, data, needed_for_sign(mech));
  if (!reply) co_return std::unexpected(reply.error());
  auto sig = wire::decode_blob(*reply);
  if (!sig) co_return internal("malformed reply from worker");
  if (mech == sign_mechanism::ecdsa && !opts.jws) {
    sig = ecdsa_raw_to_der(*sig);
    if (!sig) co_return internal("the HSM returned a malformed ECDSA signature");
  }
  co_return versioned_output{format_versioned(*v, *sig, opts.jws ? value_encoding::base64url : value_encoding::base64), *v};
}

awaitable<broker_result<bool>> key_service::verify(std::string_view name, byte_view input, std::string_view signature,
                                                sign_options opts) {
  auto parsed = parse_versioned(signature, opts.jws ? value_encoding::base64url : value_encoding::base64);
  auto found = co_await lookup(name, parsed ? parsed->version : 0);
  if (!found) co_return std::unexpected(found.error());
  auto& key = **found;
  auto type = key.meta.type;
  if (!is_asymmetric(type)) co_return invalid_input("key type " + std::string(to_string(type)) + " does not support verification");
  if (!parsed) co_return invalid_input("invalid signature: expected vault:v<version>:<base64>");
  if (auto ok = check_decryption_version(key.meta, parsed->version); !ok) co_return std::unexpected(ok.error());
  auto pk = key.public_keys.find(parsed->version);
  if (pk == key.public_keys.end())
    co_return unavailable("public key of version " + std::to_string(parsed->version) + " is not available");
  auto tbs = signing_input(type, input, opts);
  if (!tbs) co_return std::unexpected(tbs.error());
  bytes sig(parsed->value.begin(), parsed->value.end());
  auto mech = mechanism_for(type, opts);
  if (mech == sign_mechanism::ecdsa && opts.jws) {
    auto der = sig.size() == 2 * ecdsa_field_bytes(type) ? ecdsa_raw_to_der(sig) : std::nullopt;
    if (!der) co_return false;
    sig = std::move(*der);
  }
  co_return verify_signature(pk->second, type, opts.hash, mech, *tbs, sig);
}

awaitable<broker_result<versioned_output>> key_service::hmac(std::string_view name, byte_view input, hash_alg hash,
                                                          std::optional<std::uint32_t> version) {
  auto found = co_await lookup(name, version.value_or(0));
  if (!found) co_return std::unexpected(found.error());
  auto& key = **found;
  if (hash == hash_alg::none) co_return invalid_input("unsupported hmac algorithm");
  auto v = encryption_version(key.meta, version);
  if (!v) co_return std::unexpected(v.error());
  auto data = payload([&](bytes& b) { wire::encode_hmac(b, hmac_object_label(name, *v, key.meta.type), hash, input); });
  auto reply = co_await on_holders(key, *v, wire::op::hmac, data, needed_for_hmac(hash));
  if (!reply) co_return std::unexpected(reply.error());
  auto mac = wire::decode_blob(*reply);
  if (!mac) co_return internal("malformed reply from worker");
  co_return versioned_output{format_versioned(*v, *mac), *v};
}

awaitable<broker_result<bool>> key_service::verify_hmac(std::string_view name, byte_view input, std::string_view hmac_text,
                                                     hash_alg hash) {
  auto parsed = parse_versioned(hmac_text);
  if (!parsed) co_return invalid_input("invalid hmac: expected vault:v<version>:<base64>");
  auto found = co_await lookup(name, parsed->version);
  if (!found) co_return std::unexpected(found.error());
  if (auto ok = check_decryption_version((*found)->meta, parsed->version); !ok) co_return std::unexpected(ok.error());
  auto expected = co_await hmac(name, input, hash, parsed->version);
  if (!expected) co_return std::unexpected(expected.error());
  auto mine = parse_versioned(expected->text);
  co_return mine && mine->value.size() == parsed->value.size() &&
      CRYPTO_memcmp(mine->value.data(), parsed->value.data(), mine->value.size()) == 0;
}

awaitable<broker_result<secure_bytes>> key_service::random(std::size_t n) {
  auto data = payload([&](bytes& b) { wire::encode_random(b, static_cast<std::uint32_t>(n)); });
  member_filter any = [](const member&) { return true; };
  auto reply = co_await pool_.execute(wire::op::random, data, any, repeatable::yes);
  if (!reply) co_return std::unexpected(reply.error());
  auto out = wire::decode_blob<secure_bytes>(*reply);
  secure_wipe(reply->data(), reply->size());
  if (!out || out->size() != n) co_return internal("malformed reply from worker");
  co_return std::move(*out);
}

awaitable<broker_result<data_key>> key_service::datakey(std::string_view name, std::uint32_t bits) {
  if (bits != 128 && bits != 256 && bits != 512) co_return invalid_input("bits must be 128, 256 or 512");
  auto found = co_await lookup(name);
  if (!found) co_return std::unexpected(found.error());
  auto plain = co_await random(bits / 8);
  if (!plain) co_return std::unexpected(plain.error());
  auto sealed = co_await encrypt(name, *plain, {}, std::nullopt);
  if (!sealed) co_return std::unexpected(sealed.error());
  co_return data_key{std::move(*plain), std::move(*sealed)};
}

awaitable<copy_state> key_service::inspect_copy(member& m, const std::string& name, std::uint32_t version,
                                                 key_type type) {
  copy_state c{m.name(), {}, {}};
  auto state = m.state();
  if (state != member_state::serving && state != member_state::suspect && state != member_state::syncing) {
    c.problem = "member " + std::string(to_string(m.state()));
    co_return c;
  }
  bytes request;
  auto label = key_object_label(name, version);
  if (is_asymmetric(type)) wire::encode_label(request, label);
  else wire::encode_generate_key(request, label, type);
  auto op = is_asymmetric(type) ? wire::op::public_key : wire::op::key_check;
  auto reply = co_await m.call(op, request, pool_.request_timeout());
  if (!reply) {
    c.problem = reply.error().ckr == ckr_object_not_found ? "missing" : reply.error().message;
    co_return c;
  }
  bytes fp;
  if (is_asymmetric(type)) {
    auto blob = wire::decode_public_key(*reply);
    auto pk = blob ? make_public_key(*blob, type) : std::nullopt;
    if (pk) fp = public_key_fingerprint(*pk);
  } else if (auto kcv = wire::decode_blob(*reply)) {
    fp = std::move(*kcv);
  }
  if (fp.empty()) c.problem = "unreadable fingerprint";
  else c.fingerprint = hex_encode(byte_view(fp.data(), std::min<std::size_t>(fp.size(), 16)));
  co_return c;
}

awaitable<void> key_service::record_fingerprint(key_entry& key, member& made_on, std::uint32_t version) {
  auto copy = co_await inspect_copy(made_on, key.name, version, key.meta.type);
  if (!copy.fingerprint.empty()) key.meta.fingerprints[version] = copy.fingerprint;
}

awaitable<void> key_service::check_copies(member& m, const std::string& name) {
  auto* e = catalog_.find(name);
  if (!e) co_return;
  auto prints = e->meta.fingerprints;  // copied: the entry may change while this waits
  auto type = e->meta.type;
  const auto& checked = checked_[m.index()];  // a fresh worker on the same token holds the same copies
  for (auto& [version, expected] : prints) {
    if (checked.count({name, version, expected})) continue;
    auto copy = co_await inspect_copy(m, name, version, type);
    if (copy.fingerprint.empty()) continue;  // missing or unreadable: looked at again next time
    bool bad = copy.fingerprint != expected;
    if (bad) spdlog::error("member {}: key \"{}\" v{} is a different key (fingerprint {}, expected {}); not used there",
                           m.name(), name, version, copy.fingerprint, expected);
    note_copy(m, name, version, expected, !bad);
  }
}

void key_service::note_copy(const member& m, const std::string& name, std::uint32_t version, const std::string& expected,
                            bool matches) {
  checked_[m.index()].insert({name, version, expected});
  if (auto* entry = catalog_.find(name)) {
    auto& flags = entry->mismatched[version];
    flags.resize(pool_.size(), false);
    flags[m.index()] = !matches;
  }
}

awaitable<std::vector<key_sync>> key_service::sync_report() {
  std::vector<key_sync> report;
  auto names = catalog_.names();
  for (auto& name : names) {
    auto* e = catalog_.find(name);
    if (!e) continue;  // deleted while the report ran
    key_sync k{name, e->meta.type, {}};
    auto latest = e->meta.latest_version;
    for (std::uint32_t v = e->meta.min_decryption_version; v <= latest; ++v) {
      version_sync vs{v, {}, {}};
      for (std::size_t i = 0; i < pool_.size(); ++i) {
        if (!pool_.at(i).supports(k.type)) continue;
        auto copy = co_await inspect_copy(pool_.at(i), name, v, k.type);  // not inside push_back (GCC 12)
        vs.copies.push_back(std::move(copy));
      }
      std::set<std::string> prints;
      bool missing = false;
      auto recorded = catalog_.find(name) ? catalog_.find(name)->meta.fingerprints : std::map<std::uint32_t, std::string>{};
      auto expected = recorded.find(v);
      for (auto& c : vs.copies) {
        if (!c.fingerprint.empty()) prints.insert(c.fingerprint);
        if (expected != recorded.end() && !c.fingerprint.empty() && c.fingerprint != expected->second) {
          c.problem = "mismatch: not the recorded key " + expected->second + "; not used";
          prints.insert(expected->second);
        }
        missing |= c.problem == "missing";
      }
      vs.status = prints.size() > 1 ? "mismatch" : prints.empty() ? "unchecked" : missing ? "missing" : "ok";
      k.versions.push_back(std::move(vs));
    }
    report.push_back(std::move(k));
  }
  co_return report;
}

}  // namespace hsmb
