#include "broker/keys/copy_checks.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "broker/key_payloads.h"
#include "common/base64.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

awaitable<copy_state> copy_checks::inspect_copy(member& m, const std::string& name, std::uint32_t version,
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
  auto reply = co_await m.call(op, request, ctx_.pool.request_timeout());
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
