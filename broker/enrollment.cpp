#include "broker/enrollment.h"

#include <openssl/sha.h>

#include <iostream>
#include <memory>
#include <set>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "broker/typed_call.h"
#include "broker/worker_client.h"
#include "common/base64.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;
using namespace std::chrono_literals;

namespace {

// RSA-3072 generation and SO logins are slow on some HSMs; nothing here is on a request path.
constexpr std::chrono::milliseconds ceremony_call = 120s;

struct enrolling {
  const member_config* cfg = nullptr;
  std::unique_ptr<worker_client> worker;
  std::string check;  // hex of the cluster-key check value; empty: no cluster key
};

std::string hex_prefix(byte_view b) { return hex_encode(b.subspan(0, std::min<std::size_t>(b.size(), 16))); }

awaitable<std::optional<std::string>> cluster_check(enrolling& e) {
  wire::empty_payload none;
  auto r = co_await typed_call<wire::op::cluster_key_check>(*e.worker, none, ceremony_call);
  if (r) co_return hex_prefix(r->value);
  if (r.error().where == fault::malformed_reply) co_return std::string("?");
  if (r.error().ckr == ckr_no_cluster_key) co_return std::string();
  std::cout << "member " << e.cfg->name << ": cannot read its cluster key: " << r.error().message << "\n";
  co_return std::nullopt;
}

awaitable<std::unique_ptr<enrolling>> open_member(asio::io_context& io, const member_config& m, const std::string& program,
                                                  const secure_string& so_pin) {
  auto e = std::make_unique<enrolling>();
  e->cfg = &m;
  e->worker = std::make_unique<worker_client>(io, worker_launch{program, m.env, m.name});
  member_settings s{m.module, m.token_label, m.slot, m.pin, 1, so_pin};
  auto started = co_await e->worker->start(s, ceremony_call);
  if (!started) {
    std::cout << "member " << m.name << ": cannot open: " << started.error().message << "\n";
    co_return nullptr;
  }
  auto check = co_await cluster_check(*e);
  if (!check) co_return nullptr;
  e->check = *check;
  co_return e;
}

// The receiving member makes a transport key pair; the source wraps the cluster key under it
// (the SO makes that public key trusted there); the receiver unwraps it.
awaitable<bool> carry(enrolling& from, enrolling& to) {
  wire::empty_payload none;
  auto transport = co_await typed_call<wire::op::create_transport_key>(*to.worker, none, ceremony_call);
  if (!transport) {
    std::cout << "member " << to.cfg->name << ": transport key: " << transport.error().message << "\n";
    co_return false;
  }
  std::uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(transport->a.data(), transport->a.size(), digest);
  std::cout << "member " << to.cfg->name << ": transport key RSA-3072, modulus SHA-256 "
            << hex_encode(byte_view(digest, sizeof digest)) << "\n";
  auto wrapped = co_await typed_call<wire::op::export_cluster_key>(*from.worker, *transport, ceremony_call);
  if (!wrapped) {
    std::cout << "member " << from.cfg->name << ": wrapping the cluster key: " << wrapped.error().message << "\n";
    co_return false;
  }
  auto imported = co_await typed_call<wire::op::import_cluster_key>(*to.worker, *wrapped, ceremony_call);
  if (!imported) {
    std::cout << "member " << to.cfg->name << ": unwrapping the cluster key: " << imported.error().message << "\n";
    co_return false;
  }
  auto check = co_await cluster_check(to);
  if (!check || *check != from.check) {
    std::cout << "member " << to.cfg->name << ": the carried cluster key does not check out\n";
    co_return false;
  }
  to.check = *check;
  std::cout << "member " << to.cfg->name << ": cluster key carried from " << from.cfg->name << " (check " << to.check << ")\n";
  co_return true;
}

awaitable<int> enroll(asio::io_context& io, const config& cfg, const std::string& program, const so_pins& pins) {
  std::vector<std::unique_ptr<enrolling>> members;
  bool complete = true;
  for (auto& m : cfg.members) {
    const secure_string* pin = pins.find(m.name);
    if (!pin) {
      std::cout << "member " << m.name << ": no SO PIN given; skipped\n";
      complete = false;
      continue;
    }
    auto e = co_await open_member(io, m, program, *pin);
    if (!e) complete = false;
    else members.push_back(std::move(e));
  }
  if (members.empty()) co_return 1;
  std::set<std::string> keys;
  enrolling* source = nullptr;
  for (auto& e : members)
    if (!e->check.empty()) {
      keys.insert(e->check);
      if (!source) source = e.get();
    }
  if (keys.size() > 1) {
    std::cout << "the members hold different cluster keys; refusing to continue (clear all but one by hand)\n";
    co_return 3;
  }
  if (!source && !complete) {
    // A member we could not ask may hold the cluster key: a new one would split the cluster.
    std::cout << "no reachable member holds a cluster key, and not every member could be asked; "
                 "refusing to create one\n";
    co_return 1;
  }
  if (!source) {
    source = members.front().get();
    wire::empty_payload none;
    auto made = co_await typed_call<wire::op::create_cluster_key>(*source->worker, none, ceremony_call);
    std::optional<std::string> check;
    if (made) check = co_await cluster_check(*source);  // not inside ?: (GCC 12)
    if (!made || !check) {
      std::cout << "member " << source->cfg->name << ": cannot create the cluster key"
                << (made ? std::string() : ": " + made.error().message) << "\n";
      co_return 1;
    }
    source->check = *check;
    std::cout << "member " << source->cfg->name << ": cluster key created (check " << source->check << ")\n";
  }
  for (auto& e : members) {
    if (!e->check.empty()) {
      if (e.get() != source) std::cout << "member " << e->cfg->name << ": already holds the cluster key\n";
      continue;
    }
    bool carried = co_await carry(*source, *e);
    complete &= carried;
  }
  co_return complete ? 0 : 1;
}

}  // namespace

const secure_string* so_pins::find(const std::string& member) const {
  if (auto it = by_member.find(member); it != by_member.end()) return &it->second;
  return for_all ? &*for_all : nullptr;
}

int run_enrollment(const config& cfg, const std::string& worker_program, const so_pins& pins) {
  asio::io_context io;
  auto result = asio::co_spawn(io, enroll(io, cfg, worker_program, pins), asio::use_future);
  io.run();
  int code = result.get();
  std::cout << (code == 0 ? "every member holds the cluster key\n" : "enrollment incomplete\n");
  return code;
}

}  // namespace hsmb
