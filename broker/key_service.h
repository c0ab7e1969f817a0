// The key service: one object that owns the parts and hooks them into the members' joins. The
// request path calls the parts (broker/keys/): key_operations for Transit operations,
// key_lifecycle for key management, the drift report for operators. No JSON or HTTP here.
#pragma once

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/keys/copy_checks.h"
#include "broker/keys/drift_report.h"
#include "broker/keys/key_context.h"
#include "broker/keys/key_directory.h"
#include "broker/keys/key_lifecycle.h"
#include "broker/keys/key_operations.h"
#include "broker/keys/name_claims.h"
#include "broker/keys/replicator.h"

namespace hsmb {

class key_service {
 public:
  key_service(boost::asio::io_context& io, member_pool& pool, replication_mode mode = replication_mode::broker,
              std::uint32_t min_copies = 1);

  // Hooks into every member's join (syncing state): loads what it holds and, with replication,
  // copies to it what it missed (and from it what the others miss) before it serves.
  void attach();
  // Copies every missing key version and metadata record to every member that can take it.
  boost::asio::awaitable<void> reconcile();
  // reconcile(), having first looked at what each member really holds: a copy that went missing
  // from a token (a member's record still claims it) is copied again.
  boost::asio::awaitable<void> repair();
  // Whether every member's records have been read, or the member was found down by a real
  // attempt: what a broker must know before it takes traffic (README: Never a false "key not found").
  // `attempts`: how many failed attempts in a row make a member count as found down.
  bool ready(int attempts = 1) const { return ctx_.pool.settled(attempts); }

  // The request path's calls, forwarded to the part that does them.
  auto create_key(const std::string& name, create_options o) { return lifecycle_.create_key(name, o); }
  auto read_key(std::string_view name) { return lifecycle_.read_key(name); }
  auto rotate_key(const std::string& name) { return lifecycle_.rotate_key(name); }
  auto configure_key(const std::string& name, config_change c) { return lifecycle_.configure_key(name, c); }
  auto delete_key(const std::string& name) { return lifecycle_.delete_key(name); }
  auto encrypt(std::string_view name, byte_view plain, byte_view aad, std::optional<std::uint32_t> v) {
    return operations_.encrypt(name, plain, aad, v);
  }
  auto decrypt(std::string_view name, std::string_view ct, byte_view aad) { return operations_.decrypt(name, ct, aad); }
  auto rewrap(std::string_view name, std::string_view ct, byte_view aad, std::optional<std::uint32_t> v) {
    return operations_.rewrap(name, ct, aad, v);
  }
  auto sign(std::string_view name, byte_view input, sign_options o) { return operations_.sign(name, input, o); }
  auto verify(std::string_view name, byte_view input, std::string_view sig, sign_options o) {
    return operations_.verify(name, input, sig, o);
  }
  auto hmac(std::string_view name, byte_view input, hash_alg h, std::optional<std::uint32_t> v) {
    return operations_.hmac(name, input, h, v);
  }
  auto verify_hmac(std::string_view name, byte_view input, std::string_view mac, hash_alg h) {
    return operations_.verify_hmac(name, input, mac, h);
  }
  auto random(std::size_t n) { return operations_.random(n); }
  auto datakey(std::string_view name, std::uint32_t bits) { return operations_.datakey(name, bits); }

  key_operations& operations() { return operations_; }
  key_lifecycle& lifecycle() { return lifecycle_; }
  std::vector<std::string> list_keys() const { return ctx_.catalog.names(); }
  // The drift report: every key version on every member, with fingerprints.
  boost::asio::awaitable<std::vector<key_sync>> sync_report() { return report_drift(ctx_, checks_); }

 private:
  boost::asio::awaitable<bool> join(member& m);

  key_context ctx_;
  copy_checks checks_;
  key_directory directory_;
  name_claims claims_;
  replicator replication_;
  key_lifecycle lifecycle_;
  key_operations operations_;
};

}  // namespace hsmb
