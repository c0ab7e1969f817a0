#include "broker/keys/copy_checks.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "broker/keys/worker_requests.h"
#include "common/base64.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// An asymmetric copy's fingerprint: a hash of its public key (empty when unreadable).
awaitable<hsm_result<bytes>> public_key_print(member& m, const std::string& label, key_type type,
                                              std::chrono::milliseconds budget) {
  auto request = label_request(label);
  auto blob = co_await typed_call<wire::op::public_key>(m, request, budget);
  if (!blob) co_return std::unexpected(blob.error());
  auto pk = make_public_key(*blob, type);
  co_return pk ? public_key_fingerprint(*pk) : bytes{};
}

// A secret copy's fingerprint: its key check value, computed on the HSM.
awaitable<hsm_result<bytes>> check_value(member& m, const std::string& label, key_type type, std::chrono::milliseconds budget) {
  wire::generate_key_request request{label, type};
  auto kcv = co_await typed_call<wire::op::key_check>(m, request, budget);
  if (!kcv) co_return std::unexpected(kcv.error());
  co_return std::move(kcv->value);
}

}  // namespace

awaitable<copy_state> copy_checks::inspect_copy(member& m, const std::string& name, std::uint32_t version,
                                                 key_type type) {
  copy_state c{m.name(), {}, {}};
  auto state = m.state();
  if (state != member_state::serving && state != member_state::suspect && state != member_state::syncing) {
    c.problem = "member " + std::string(to_string(m.state()));
    co_return c;
  }
  auto label = key_object_label(name, version);
  auto budget = ctx_.pool.request_timeout();
  hsm_result<bytes> fp;  // no co_await inside ?: (GCC 12)
  if (is_asymmetric(type)) fp = co_await public_key_print(m, label, type, budget);
  else fp = co_await check_value(m, label, type, budget);
  if (!fp) {
    c.problem = fp.error().ckr == ckr_object_not_found ? "missing" : fp.error().message;
    co_return c;
  }
  if (fp->empty()) c.problem = "unreadable fingerprint";
  else c.fingerprint = hex_encode(byte_view(fp->data(), std::min<std::size_t>(fp->size(), 16)));
  co_return c;
}

awaitable<void> copy_checks::record_fingerprint(key_entry& key, member& made_on, std::uint32_t version) {
  auto copy = co_await inspect_copy(made_on, key.name, version, key.meta.type);
  if (!copy.fingerprint.empty()) key.meta.fingerprints[version] = copy.fingerprint;
}

awaitable<void> copy_checks::check_copies(member& m, const std::string& name) {
  auto* e = ctx_.catalog.find(name);
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

void copy_checks::note_copy(const member& m, const std::string& name, std::uint32_t version, const std::string& expected,
                            bool matches) {
  checked_[m.index()].insert({name, version, expected});
  if (auto* entry = ctx_.catalog.find(name)) {
    auto& flags = entry->mismatched[version];
    flags.resize(ctx_.pool.size(), false);
    flags[m.index()] = !matches;
  }
}

void copy_checks::forget(const member& m, const std::string& name) {
  std::erase_if(checked_[m.index()], [&](auto& c) { return std::get<0>(c) == name; });
}

}  // namespace hsmb
