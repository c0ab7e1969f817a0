#include "broker/keys/key_lifecycle.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "broker/keys/worker_requests.h"
#include "common/duration.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// RSA-4096 generation takes seconds on SoftHSM2 and on many real HSMs: not a hang.
constexpr std::chrono::seconds key_generation_timeout{120};

// Creating a name again is idempotent only with the same type.
std::unexpected<broker_error> exists_with_type(const std::string& name, key_type type) {
  return invalid_input("key \"" + name + "\" already exists with type " + std::string(to_string(type)));
}

}  // namespace

awaitable<broker_result<key_entry>> key_lifecycle::read_key(std::string_view name) {
  auto e = co_await directory_.lookup(name);
  if (!e) co_return std::unexpected(e.error());
  co_return **e;
}

awaitable<broker_result<key_entry>> key_lifecycle::create_key(const std::string& name, create_options opts) {
  if (!valid_key_name(name)) co_return invalid_input("invalid key name \"" + name + "\": use 1-128 of A-Z a-z 0-9 _ - .");
  if (auto ok = check_rotate_period(opts.auto_rotate_period); !ok) co_return std::unexpected(ok.error());
  auto known = co_await directory_.lookup(name);
  if (!known && known.error().kind != error_kind::not_found) co_return std::unexpected(known.error());  // unread members may hold it
  if (ctx_.pool.serving_count() == 0) co_await ctx_.pool.wait_any_started(ctx_.pool.request_timeout());
  auto lock = co_await ctx_.admin.lock();
  if (auto* e = ctx_.catalog.find(name)) {
    if (e->meta.type != opts.type)
      co_return exists_with_type(name, e->meta.type);
    co_return *e;  // creation is idempotent by name
  }
  if (!directory_.unread().empty()) co_return std::unexpected(directory_.absent(name));
  auto claimed = co_await claims_.claim(name);
  if (!claimed) co_return std::unexpected(claimed.error());
  co_return co_await create_claimed(name, opts);  // the claim is released as it goes out of scope
}

awaitable<broker_result<key_entry>> key_lifecycle::create_claimed(const std::string& name, create_options opts) {
  if (auto* e = ctx_.catalog.find(name)) {  // another broker created it first: the claim merged its record
    if (e->meta.type != opts.type)
      co_return exists_with_type(name, e->meta.type);
    for (std::size_t i = 0; i < ctx_.pool.size() && ctx_.replicates(); ++i)  // finds (and checks) its copies elsewhere
      if (ctx_.pool.at(i).usable()) co_await replication_.reconcile_key(name, ctx_.pool.at(i));
    co_return *ctx_.catalog.find(name);
  }
  auto candidates = generation_candidates(opts.type, nullptr);
  bool any_capable = false;
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i) any_capable |= ctx_.pool.at(i).supports(opts.type);
  if (candidates.empty() && !any_capable && ctx_.pool.serving_count() > 0)
    co_return invalid_input("no member's HSM supports keys of type " + std::string(to_string(opts.type)));
  auto label = key_object_label(name, 1);  // named: no temporaries bound across co_await (GCC 12)
  auto prefix = key_object_prefix(name);
  auto made = co_await generate_on_any(std::move(candidates), label, opts.type);
  if (!made) co_return std::unexpected(made.error());
  key_entry entry;
  entry.name = name;
  entry.meta.type = opts.type;
  entry.meta.auto_rotate_period = opts.auto_rotate_period;
  entry.meta.created[1] = unix_seconds_now();
  if (auto* tomb = ctx_.catalog.find_any(name)) entry.meta.revision = tomb->meta.revision + 1;  // re-created after a delete
  entry.held_up_to.assign(ctx_.pool.size(), 0);
  entry.member_revision.assign(ctx_.pool.size(), 0);
  entry.member_born.assign(ctx_.pool.size(), std::string());
  entry.held_up_to[made->on->index()] = 1;
  if (is_asymmetric(opts.type)) {
    auto pk = make_public_key(made->blob, opts.type);
    if (!pk) co_return internal("the HSM returned a public key the broker cannot read");
    entry.public_keys.emplace(1, std::move(*pk));
  }
  co_await checks_.record_fingerprint(entry, *made->on, 1);
  std::vector<std::size_t> holders{made->on->index()};
  if (ctx_.replicates()) holders = co_await replication_.spread(entry, *made->on, 1);  // not inside ?: (GCC 12)
  auto need = required_copies(opts.type);
  if (holders.size() < need) {
    co_await replication_.discard(holders, prefix);
    co_return unavailable("key \"" + name + "\" could be stored on " + std::to_string(holders.size()) + " member(s), " +
                            "but replication.min_copies requires " + std::to_string(need) + "; nothing was created");
  }
  for (std::size_t i : holders) entry.held_up_to[i] = 1;
  // Records first, then the catalog: no request can use the key before it is stored for good.
  auto stored = co_await directory_.store_metadata_on(entry, holders);
  if (!stored) {
    co_await replication_.discard(holders, prefix);
    co_return std::unexpected(stored.error());
  }
  ctx_.catalog.erase(name);  // a tombstone's holdings and mismatches belong to the deleted key
  auto& e = ctx_.catalog.put(name, entry.meta);
  e.held_up_to = entry.held_up_to;
  e.public_keys = entry.public_keys;
  for (std::size_t i : *stored) e.member_revision[i] = entry.meta.revision;
  spdlog::info("key \"{}\" ({}) created on {} member(s)", name, to_string(opts.type), holders.size());
  co_return *ctx_.catalog.find(name);
}

awaitable<broker_result<key_entry>> key_lifecycle::rotate_key(const std::string& name) {
  if (auto known = co_await directory_.lookup(name); !known) co_return std::unexpected(known.error());
  if (ctx_.pool.serving_count() == 0) co_await ctx_.pool.wait_any_started(ctx_.pool.request_timeout());
  auto lock = co_await ctx_.admin.lock();
  auto found = directory_.existing(name);
  if (!found) co_return std::unexpected(found.error());
  auto claimed = co_await claims_.claim(name);
  if (!claimed) co_return std::unexpected(claimed.error());
  co_return co_await rotate_claimed(name);  // the claim is released as it goes out of scope
}

awaitable<broker_result<bool>> key_lifecycle::rotate_if_due(const std::string& name) {
  auto* seen = ctx_.catalog.find(name);
  if (!seen || !rotation_due(seen->meta, unix_seconds_now())) co_return false;
  auto lock = co_await ctx_.admin.lock();
  auto claimed = co_await claims_.claim(name);
  if (!claimed) co_return std::unexpected(claimed.error());
  // The claim merged the arbiter's record: another broker's rotation this period shows there.
  auto found = directory_.existing(name);
  if (!found || !rotation_due((*found)->meta, unix_seconds_now())) co_return false;
  auto rotated = co_await rotate_claimed(name);
  if (!rotated) co_return std::unexpected(rotated.error());
  spdlog::info("key \"{}\" rotated to version {}: auto_rotate_period {}s had passed", name, rotated->meta.latest_version,
               rotated->meta.auto_rotate_period);
  co_return true;
}

broker_result<void> key_lifecycle::check_rotate_period(std::int64_t period) const {
  if (period == 0 || period >= ctx_.min_auto_rotate_period) return {};
  return invalid_input("auto_rotate_period must be 0 (off) or at least " + std::to_string(ctx_.min_auto_rotate_period) +
                       " seconds (auto_rotate.min_period)");
}

awaitable<broker_result<key_entry>> key_lifecycle::rotate_claimed(const std::string& name) {
  auto found = directory_.existing(name);  // again: the claim may have merged another broker's change
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
  co_await checks_.record_fingerprint(next, *made->on, v);
  std::vector<std::size_t> holders{made->on->index()};
  if (ctx_.replicates()) holders = co_await replication_.spread(next, *made->on, v);  // not inside ?: (GCC 12)
  auto need = required_copies(next.meta.type);
  if (holders.size() < need) {
    co_await replication_.discard(holders, label);
    co_return unavailable("version " + std::to_string(v) + " of key \"" + name + "\" could be stored on " +
                            std::to_string(holders.size()) + " member(s), but replication.min_copies requires " +
                            std::to_string(need) + "; the key was not rotated");
  }
  for (std::size_t i : holders) next.held_up_to[i] = v;
  if (auto stored = co_await directory_.store_metadata_on(next, holders); !stored) {
    co_await replication_.discard(holders, label);
    co_return std::unexpected(stored.error());
  }
  auto& e = ctx_.catalog.put(name, next.meta);
  e.held_up_to = next.held_up_to;
  e.public_keys = next.public_keys;
  co_return e;
}

awaitable<broker_result<key_entry>> key_lifecycle::configure_key(const std::string& name, config_change change) {
  if (auto known = co_await directory_.lookup(name); !known) co_return std::unexpected(known.error());
  auto lock = co_await ctx_.admin.lock();
  auto found = directory_.existing(name);
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
  if (change.auto_rotate_period) {
    if (auto ok = check_rotate_period(*change.auto_rotate_period); !ok) co_return std::unexpected(ok.error());
    m.auto_rotate_period = *change.auto_rotate_period;
  }
  ++m.revision;
  auto targets = directory_.write_targets(next);  // named: no temporaries bound across co_await (GCC 12)
  if (auto stored = co_await directory_.store_metadata_on(next, targets); !stored) co_return std::unexpected(stored.error());
  co_return ctx_.catalog.put(name, m);
}

awaitable<broker_result<key_entry>> key_lifecycle::set_certificate_chain(const std::string& name, std::uint32_t version,
                                                                        std::string chain_pem) {
  if (auto known = co_await directory_.lookup(name); !known) co_return std::unexpected(known.error());
  auto lock = co_await ctx_.admin.lock();
  auto found = directory_.existing(name);
  if (!found) co_return std::unexpected(found.error());
  key_entry next = **found;
  if (version == 0 || version > next.meta.latest_version) co_return invalid_input("no version " + std::to_string(version) + " of key \"" + name + "\"");
  next.meta.certificate_chains[version] = std::move(chain_pem);
  ++next.meta.revision;
  auto targets = directory_.write_targets(next);  // named: no temporaries bound across co_await (GCC 12)
  if (auto stored = co_await directory_.store_metadata_on(next, targets); !stored) co_return std::unexpected(stored.error());
  auto& e = ctx_.catalog.put(name, next.meta);
  co_return e;
}

awaitable<broker_result<void>> key_lifecycle::delete_key(const std::string& name) {
  if (auto known = co_await directory_.lookup(name); !known) co_return std::unexpected(known.error());
  auto lock = co_await ctx_.admin.lock();
  auto found = directory_.existing(name);
  if (!found) co_return std::unexpected(found.error());
  key_entry key = **found;
  if (!key.meta.deletion_allowed) co_return invalid_input("deletion is not allowed for this key");
  key.meta.deleted = true;
  ++key.meta.revision;
  auto prefix = label_request(key_object_prefix(name));
  auto record = metadata_request(name, key.meta);
  bool any = false;
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i) {
    auto& m = ctx_.pool.at(i);
    if (!m.usable()) continue;  // a member that returns gets the tombstone then
    if (ctx_.mode == replication_mode::none && any) break;
    // The tombstone first: a half-deleted key must not look like a usable one.
    auto r = co_await typed_call<wire::op::put_metadata>(m, record, ctx_.pool.request_timeout());
    if (!r) {
      // Once one member holds the tombstone the delete has happened: the rest catch up later.
      if (!any) co_return unavailable("could not delete key on member " + m.name() + ": " + r.error().message);
      spdlog::warn("key \"{}\": tombstone not written on member {} yet: {}", name, m.name(), r.error().message);
      continue;
    }
    any = true;
    auto destroyed = co_await typed_call<wire::op::destroy_objects>(m, prefix, ctx_.pool.request_timeout());
    if (!destroyed) {
      // Left as not done, so this broker's next catch-up of the member destroys them again.
      spdlog::warn("key \"{}\": objects on member {} not destroyed yet: {}", name, m.name(), destroyed.error().message);
      continue;
    }
    ctx_.catalog.find_any(name)->set_holding(i, key.meta);
  }
  if (!any) co_return unavailable("no member is serving; key not deleted");
  ctx_.catalog.put(name, key.meta);
  spdlog::info("key \"{}\" deleted", name);
  co_return broker_result<void>{};
}

std::vector<member*> key_lifecycle::generation_candidates(key_type type, const key_entry* existing) {
  std::vector<member*> out;
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i) {
    auto& m = ctx_.pool.at(i);
    // Not merely serving ones: the first member not down is the claim's arbiter, and a key made (or
    // copied) there is seen by every broker; one still starting or syncing is waited for.
    if (m.state() == member_state::down || !m.supports(type)) continue;
    if (existing && ctx_.mode == replication_mode::broker && existing->held_up_to[i] != existing->meta.latest_version) continue;
    out.push_back(&m);
  }
  // Members that can do everything a key of this type is asked (every HMAC hash) first, so a key
  // that cannot be copied lands where every request for it can be served.
  std::stable_partition(out.begin(), out.end(), [&](member* m) { return m->offers(useful_for(type)); });
  return out;
}

std::uint32_t key_lifecycle::required_copies(key_type type) const {
  if (!ctx_.replicates()) return 1;
  std::uint32_t able = 0;  // a cluster that cannot copy this type at all would never reach min_copies
  for (std::size_t i = 0; i < ctx_.pool.size(); ++i) able += ctx_.pool.at(i).can_copy(type) ? 1 : 0;
  return std::max<std::uint32_t>(1, std::min(ctx_.min_copies, std::max<std::uint32_t>(able, 1)));
}

awaitable<broker_result<public_key_blob>> key_lifecycle::generate(member& m, const std::string& label, key_type type) {
  wire::generate_key_request request{label, type};
  auto reply = co_await typed_call<wire::op::generate_key>(m, request, key_generation_timeout, member::pace::slow);
  if (!reply) {
    auto why = try_elsewhere(reply.error()) ? broker_error{error_kind::unavailable, error_origin::device, {}}
                                            : caller_error(reply.error());
    why.message = "key generation on member " + m.name() + " failed: " + reply.error().message;
    co_return std::unexpected(why);
  }
  if (type != key_type::hmac) {
    wire::generate_key_request companion{label + "/hmac", key_type::hmac};
    auto mac = co_await typed_call<wire::op::generate_key>(m, companion, key_generation_timeout, member::pace::slow);
    if (!mac) {
      auto cleanup = label_request(label);
      co_await typed_call<wire::op::destroy_objects>(m, cleanup, ctx_.pool.request_timeout());
      co_return unavailable("hmac key generation on member " + m.name() + " failed: " + mac.error().message);
    }
  }
  co_return std::move(*reply);
}

awaitable<broker_result<key_lifecycle::generated>> key_lifecycle::generate_on_any(std::vector<member*> candidates,
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

}  // namespace hsmb
