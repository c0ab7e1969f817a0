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

  // Rotates, every `every`, each key whose auto_rotate_period has passed (README "Automatic
  // rotation"); runs until the io_context stops.
  boost::asio::awaitable<void> auto_rotate(std::chrono::milliseconds every);
  void set_min_auto_rotate_period(std::int64_t seconds) { ctx_.min_auto_rotate_period = seconds; }

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
