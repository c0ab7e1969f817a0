// Key replication (replication.mode: broker): copies of each key version travel between members
// wrapped under the cluster key (docs/replication.md), when a key is made or rotated, and when a
// member joins having missed changes.
#pragma once

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/keys/key_directory.h"

namespace hsmb {

class replicator {
 public:
  replicator(key_context& ctx, key_directory& directory, copy_checks& checks)
      : ctx_(ctx), directory_(directory), checks_(checks) {}

  // Copies every missing key version and metadata record to every member that can take it.
  // The caller holds ctx.admin.
  boost::asio::awaitable<void> reconcile_member(member& m);
  // Brings member `m` up to date for one key: missing versions, then its metadata record.
  // false when `m` cannot take copies now (not enrolled, or a device error), so the caller stops
  // trying for this pass.
  boost::asio::awaitable<bool> reconcile_key(const std::string& name, member& m);
  // Lowers m's holdings to below the first version its token turns out not to hold, so that the
  // next reconcile copies it again. The caller holds ctx.admin.
  boost::asio::awaitable<void> forget_missing_copies(member& m);
  // Copies a version just made on `made_on` to every other serving member that holds the versions
  // before it; returns the members that now hold it, `made_on` first.
  boost::asio::awaitable<std::vector<std::size_t>> spread(const key_entry& key, member& made_on, std::uint32_t v);
  // Destroys the objects under `prefix` on `holders` (a create or rotate that did not finish).
  boost::asio::awaitable<void> discard(const std::vector<std::size_t>& holders, const std::string& prefix);

 private:
  // Copies version `v` of `key` (and its HMAC companion) from one member to another, and checks
  // the copy against the recorded fingerprint. An existing identical copy counts as copied.
  boost::asio::awaitable<hsm_result<void>> copy_version(member& from, member& to, const key_entry& key, std::uint32_t v);
  // Removes copies of a deleted key of this name from a member that was away (see the .cpp);
  // false when the member could not be asked.
  boost::asio::awaitable<bool> drop_stale_copies(const std::string& name, member& m);
  // Destroys every object of key `name` on m (a tombstone's, or a stale earlier key's); false when
  // m could not do it now.
  boost::asio::awaitable<bool> destroy_copies(member& m, const std::string& name);

  key_context& ctx_;
  key_directory& directory_;
  copy_checks& checks_;
};

}  // namespace hsmb
