#include "kms_plugin/plugin_core.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "kms_plugin/key_id.h"

namespace hsmb::kms {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view required_type = "aes256-gcm96";
// Re-reads caused by a ciphertext's claim are spaced so forged versions cannot flood the broker.
constexpr auto refresh_spacing = 100ms;
constexpr auto probe_budget = 1500ms;  // one attempt of the probe pool (main.cpp): Status answers within 2 s

}  // namespace

plugin_core::plugin_core(transit_key& key, transit_key& probe_key, std::chrono::milliseconds health_ttl)
    : key_(key), probe_key_(probe_key), health_ttl_(health_ttl) {}

result<void> plugin_core::refresh(clock::time_point deadline) {
  auto versions = key_.read(deadline);
  if (!versions) return std::unexpected(versions.error());
  if (versions->type != required_type)
    return std::unexpected(failure{failure_kind::invalid, "key \"" + key_.name() + "\" is of type " + versions->type +
                                                              "; the plugin needs " + std::string(required_type)});
  std::lock_guard lock(ids_mu_);
  for (auto& [version, created] : versions->created) {
    auto id = make_key_id(key_.name(), version, created);
    auto [it, added] = ids_.try_emplace(version, id);
    if (added) spdlog::info("key \"{}\" version {}: key_id {}", key_.name(), version, id);
    if (it->second != id) {  // deleted and made again under the same name: the old ids are gone
      spdlog::warn("key \"{}\" version {} was re-created: key_id {} replaces {}", key_.name(), version, id, it->second);
      it->second = id;
    }
  }
  return {};
}

result<std::string> plugin_core::key_id_of(std::uint32_t version, clock::time_point deadline, bool from_broker) {
  auto known = [&]() -> std::optional<std::string> {
    std::lock_guard lock(ids_mu_);
    if (auto it = ids_.find(version); it != ids_.end()) return it->second;
    return std::nullopt;
  };
  if (auto id = known()) return *id;
  std::lock_guard lock(refresh_mu_);
  if (auto id = known()) return *id;  // another thread's re-read found it
  if (!from_broker) {
    auto next = refreshed_at_ + refresh_spacing;
    if (next > deadline) return std::unexpected(failure{failure_kind::invalid, "unknown key version " + std::to_string(version)});
    if (next > clock::now()) std::this_thread::sleep_until(next);
  }
  auto r = refresh(deadline);
  refreshed_at_ = clock::now();
  if (!r) return std::unexpected(r.error());
  if (auto id = known()) return *id;
  return std::unexpected(failure{failure_kind::invalid, "key \"" + key_.name() + "\" has no version " + std::to_string(version)});
}

result<std::string> plugin_core::probe(clock::time_point deadline) {
  static constexpr std::uint8_t text[] = {'h', 's', 'm', '-', 'k', 'm', 's', '-', 'p', 'r', 'o', 'b', 'e'};
  auto ct = probe_key_.encrypt(text, deadline, broker_pool::on_unavailable::answer);
  if (!ct) return std::unexpected(ct.error());
  auto version = ciphertext_version(*ct);
  if (!version) return std::unexpected(failure{failure_kind::internal, "broker: not a Transit ciphertext"});
  return key_id_of(*version, deadline, true);
}

status_report plugin_core::status() {
  std::lock_guard lock(health_mu_);
  auto now = clock::now();
  if (health_at_ != clock::time_point{} && now - health_at_ < health_ttl_) return health_;
  // A real encrypt: "ok" means the broker can use the key on some HSM now. No retry of 503 (no
  // member serves: that is the answer), but a broker restart is waited for within the budget.
  auto deadline = now + probe_budget;
  auto id = probe(deadline);
  if (id) {
    if (health_.healthz != "ok") spdlog::info("healthy: key \"{}\", key_id {}", key_.name(), *id);
    health_ = {"ok", *id};
  } else {
    if (health_.healthz != id.error().message) spdlog::warn("unhealthy: {}", id.error().message);
    health_.healthz = id.error().message;  // key_id stays the last one known
  }
  health_at_ = clock::now();
  return health_;
}

result<encrypted> plugin_core::encrypt(byte_view plaintext, clock::time_point deadline) {
  if (plaintext.empty() || plaintext.size() > max_plaintext)
    return std::unexpected(failure{failure_kind::invalid, "plaintext must be 1 to " + std::to_string(max_plaintext) +
                                                              " bytes, not " + std::to_string(plaintext.size())});
  auto ct = key_.encrypt(plaintext, deadline);
  if (!ct) return std::unexpected(ct.error());
  auto version = ciphertext_version(*ct);
  if (!version) return std::unexpected(failure{failure_kind::internal, "broker: not a Transit ciphertext"});
  auto id = key_id_of(*version, deadline, true);
  if (!id) return std::unexpected(id.error());
  return encrypted{std::move(*ct), std::move(*id)};
}

result<secure_bytes> plugin_core::decrypt(std::string_view ciphertext, std::string_view key_id, clock::time_point deadline) {
  auto version = ciphertext_version(ciphertext);
  if (!version) return std::unexpected(failure{failure_kind::invalid, "not a ciphertext of this plugin"});
  auto id = key_id_of(*version, deadline, false);
  if (!id && id.error().kind != failure_kind::invalid) return std::unexpected(id.error());
  // Only ids this key has had: an id of another key, plugin or deleted key is refused here.
  if (!id || *id != key_id)
    return std::unexpected(failure{failure_kind::invalid, "unknown key_id \"" + std::string(key_id.substr(0, 64)) +
                                                              "\" for key \"" + key_.name() + "\""});
  return key_.decrypt(ciphertext, deadline);
}

}  // namespace hsmb::kms
