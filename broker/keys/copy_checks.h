// Whether a member's copy of a key version is the recorded key: fingerprints (public key hash,
// or a key check value) compared once per copy, and a copy that differs is not used.
#pragma once

#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/keys/key_context.h"

namespace hsmb {

// Where one copy of a key version is, and whether it is the same key.
struct copy_state {
  std::string member;
  std::string fingerprint;  // hex; empty when missing or not checked
  std::string problem;      // "missing", "member down", or the member's error
};

class copy_checks {
 public:
  explicit copy_checks(key_context& ctx) : ctx_(ctx), checked_(ctx.pool.size()) {}

  // Reads the fingerprint of m's copy of name/version (without comparing it).
  boost::asio::awaitable<copy_state> inspect_copy(member& m, const std::string& name, std::uint32_t version, key_type type);
  // Records the new version's fingerprint (from the member that made it) in `key`'s metadata.
  boost::asio::awaitable<void> record_fingerprint(key_entry& key, member& made_on, std::uint32_t version);
  // Compares a joining member's copies with the recorded fingerprints; mismatches are not used.
  boost::asio::awaitable<void> check_copies(member& m, const std::string& name);
  // What comparing m's copy of name/version with the recorded fingerprint found: remembered, so
  // it is not compared again, and a copy that differs is not used.
  void note_copy(const member& m, const std::string& name, std::uint32_t version, const std::string& expected,
                 bool matches);
  // m's copies of `name` were destroyed: whatever is there next is checked afresh.
  void forget(const member& m, const std::string& name);

 private:
  key_context& ctx_;
  // Per member: copies found to be the recorded key (name, version, fingerprint). With the
  // fingerprint: a name deleted and made again is a different key, whose copies are unchecked.
  std::vector<std::set<std::tuple<std::string, std::uint32_t, std::string>>> checked_;
};

}  // namespace hsmb
