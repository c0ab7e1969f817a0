// What the members hold, as far as this broker has read it: loads and merges each member's key
// records into the catalog, finds a key for a request (README: Never a false "key not found"),
// and writes a key's record back to members.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/error.h"
#include "broker/keys/copy_checks.h"
#include "common/coro/wake_list.h"

namespace hsmb {

class key_directory {
 public:
  key_directory(key_context& ctx, copy_checks& checks) : ctx_(ctx), checks_(checks), read_(ctx.pool.size(), false) {}

  // Reads m's records afresh (m joining): false when it could not list what it holds.
  boost::asio::awaitable<bool> load_from(member& m);
  // Member `m`'s metadata records (keys, tombstones, claims); nullopt when it cannot say.
  boost::asio::awaitable<std::optional<std::vector<metadata_record>>> list_records(member& m);
  // Merges `m`'s key records (only the one named `only`, if given) and fetches new public keys;
  // when `m` is joining, also reports damaged records and checks its copies. Returns how many
  // records it merged.
  boost::asio::awaitable<std::size_t> merge_records(member& m, const std::vector<metadata_record>& records,
                                                    std::string_view only = {}, bool joining = false);

  // The key, or why not: 404 only when every member's records have been read (members not read
  // yet may hold it: unavailable, naming them).
  broker_result<key_entry*> existing(std::string_view name);
  // existing(), but an unknown key, or a version newer than the known latest, first re-reads every
  // serving member's records (another broker may have made it), then waits within the request
  // deadline for members whose records are not read yet.
  boost::asio::awaitable<broker_result<key_entry*>> lookup(std::string_view name, std::uint32_t version = 0);
  // Members whose records this broker has never read (none once one was read, with replication:
  // none, where every member holds every key).
  std::vector<member*> unread() const;
  broker_error absent(std::string_view name, std::uint32_t version = 0) const;

  // Writes `key`'s metadata to each of `targets`; answers those that took it, fails if none did.
  boost::asio::awaitable<broker_result<std::vector<std::size_t>>> store_metadata_on(const key_entry& key,
                                                                                    const std::vector<std::size_t>& targets);
  // The members a key change is written to: its holders, or (replication: none) the first
  // serving member, since the HSM cluster copies it to the others.
  std::vector<std::size_t> write_targets(const key_entry& key) const;

 private:
  boost::asio::awaitable<void> fetch_public_keys(member& m, const std::string& name);
  // "hsm3 (down: no token labelled 'hsm3'), hsm2 (starting)"
  std::string describe_unread() const;
  // Waits until no unread member is starting, syncing or restarting, or until `deadline`.
  boost::asio::awaitable<void> wait_for_unread(std::chrono::steady_clock::time_point deadline);
  // Returns once a re-read of the members that began at or after `asked` has finished, or at
  // `deadline`. However many requests ask, re-reads begin at most every refresh_spacing.
  boost::asio::awaitable<void> refresh_since(std::chrono::steady_clock::time_point asked,
                                             std::chrono::steady_clock::time_point deadline);
  boost::asio::awaitable<void> refresh();

  key_context& ctx_;
  copy_checks& checks_;
  std::vector<bool> read_;  // by member index: its records were read at least once
  // Re-reads of the members for names or versions not known (refresh_since).
  bool refreshing_ = false;
  std::chrono::steady_clock::time_point refresh_began_{};    // the running or last re-read
  std::chrono::steady_clock::time_point refreshed_since_{};  // when the last finished one began
  wake_list refresh_waiters_;                                // woken when a re-read ends
  std::map<std::string, std::chrono::steady_clock::time_point, std::less<>> absent_at_;  // 404s, for absent_memory
};

}  // namespace hsmb
