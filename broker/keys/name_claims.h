// Two brokers (a hand-off, or sidecars sharing HSMs) must not change one key at once: a claim is
// a lock record on the first member that is not down (every broker picks the same one), and
// while it is held that member's copy of the key's record is the latest word.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/error.h"
#include "broker/keys/key_directory.h"

namespace hsmb {

// A claim held: released when it goes out of scope, however the change that took it ended. The
// release goes through the worker that checked the claim (kept for it), a process other than the
// broker's own worker: its write makes every other process re-read the token, so whatever this
// change's own writes hid from the broker's worker (see name_claims.cpp) shows again.
class name_claim {
 public:
  // `budget`: how long the release may take (the pool's request timeout).
  name_claim(boost::asio::io_context& io, member& arbiter, std::string record, std::chrono::milliseconds budget,
             std::unique_ptr<worker_channel> checker)
      : io_(&io), arbiter_(&arbiter), record_(std::move(record)), budget_(budget), checker_(std::move(checker)) {}
  name_claim(name_claim&& o) noexcept
      : io_(o.io_), arbiter_(std::exchange(o.arbiter_, nullptr)), record_(std::move(o.record_)), budget_(o.budget_),
        checker_(std::move(o.checker_)) {}
  name_claim& operator=(name_claim&&) = delete;
  ~name_claim();
  const std::string& record() const { return record_; }

 private:
  boost::asio::io_context* io_;
  member* arbiter_;  // null once moved from
  std::string record_;
  std::chrono::milliseconds budget_;
  std::unique_ptr<worker_channel> checker_;  // null if the check's worker is gone
};

class name_claims {
 public:
  // Time and tokens come from the pool's time_source and random_source (tests move time on).
  name_claims(key_context& ctx, key_directory& directory);

  // Claims `name`, waiting (bounded by the request deadline) while another broker's live claim is
  // there; merges the arbiter's record of the name before returning.
  boost::asio::awaitable<broker_result<name_claim>> claim(const std::string& name);

 private:
  struct claim_view {
    std::vector<metadata_record> records;
    bool contended = false;  // someone else's live claim on the name is there
    std::unique_ptr<worker_channel> checker;  // the worker that looked
  };
  // What the arbiter holds, and whether another broker's live claim on `name` is among it, as a
  // worker started for the check sees it.
  boost::asio::awaitable<std::optional<claim_view>> contended(member& arbiter, const std::string& name);
  boost::asio::awaitable<void> touch(worker_channel& checker, std::chrono::milliseconds budget);

  key_context& ctx_;
  key_directory& directory_;
  std::int64_t unix_now() const;
  std::string token();

  std::string instance_;  // this broker's claims: claim/<name>/<instance>-<token>
};

// Deletes a claim record, through `checker` while it lives, else through the member's worker; a
// failure is logged and left to expire.
boost::asio::awaitable<void> release_claim(member& arbiter, std::string record, std::chrono::milliseconds budget,
                                           std::unique_ptr<worker_channel> checker = nullptr);

}  // namespace hsmb
