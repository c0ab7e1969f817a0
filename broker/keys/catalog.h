// The broker's cache of every key: metadata, public keys and which versions each member holds.
// Rebuilt from the HSMs at start-up and whenever a member (re)joins; never the source of truth.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "broker/keys/metadata.h"
#include "broker/keys/public_key.h"

namespace hsmb {

struct key_entry {
  std::string name;
  key_metadata meta;
  std::map<std::uint32_t, public_key> public_keys;  // asymmetric keys only
  // By member index: versions 1..held_up_to are on that member (0: none), as its own metadata
  // record says, and the revision of that record (0: none).
  std::vector<std::uint32_t> held_up_to;
  std::vector<std::uint64_t> member_revision;
  // By member index: the fingerprint of version 1 that member's record holds (empty: unknown).
  // Differs from the recorded one when the member's copy is of an earlier key of this name.
  std::vector<std::string> member_born;
  // version -> members whose copy does not match the recorded fingerprint: never used for it
  std::map<std::uint32_t, std::vector<bool>> mismatched;

  bool copy_differs(std::size_t member, std::uint32_t version) const {
    auto it = mismatched.find(version);
    return it != mismatched.end() && member < it->second.size() && it->second[member];
  }
  // Whether requests for `version` may go to `member`.
  bool usable_on(std::size_t member, std::uint32_t version) const {
    return held_up_to[member] >= version && !copy_differs(member, version);
  }
  void set_holding(std::size_t member, const key_metadata& m) {
    held_up_to[member] = m.deleted ? 0 : m.latest_version;
    member_revision[member] = m.revision;
    auto v1 = m.fingerprints.find(1);
    member_born[member] = v1 == m.fingerprints.end() ? std::string() : v1->second;
  }
  // Whether `member`'s record is of another key of this name (made, deleted, made again).
  bool born_elsewhere(std::size_t member) const {
    auto v1 = meta.fingerprints.find(1);
    return !member_born[member].empty() && v1 != meta.fingerprints.end() && member_born[member] != v1->second;
  }
};

class key_catalog {
 public:
  explicit key_catalog(std::size_t members) : members_(members) {}

  // Live keys only; find_any also returns tombstones (deleted keys).
  key_entry* find(std::string_view name);
  key_entry* find_any(std::string_view name);
  std::vector<std::string> names() const;      // live keys
  std::vector<std::string> all_names() const;  // tombstones too
  // Inserts or replaces the metadata; holdings and public keys are kept.
  key_entry& put(const std::string& name, const key_metadata& meta);
  void erase(std::string_view name);
  // Merges one member's record: the higher revision wins; the member's holding is recorded.
  key_entry& merge_from_member(std::size_t member, const std::string& name, const key_metadata& meta);

 private:
  std::size_t members_;
  std::map<std::string, key_entry, std::less<>> entries_;
};

}  // namespace hsmb
