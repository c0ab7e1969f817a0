// The broker's cache of every key: metadata, public keys and which members hold it. Rebuilt from
// the HSMs at start-up and whenever a member (re)joins; never the source of truth.
#pragma once

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
  std::vector<bool> held_by;                        // by member index
  // version -> members whose copy does not match the recorded fingerprint: never used for it
  std::map<std::uint32_t, std::vector<bool>> mismatched;

  bool copy_differs(std::size_t member, std::uint32_t version) const {
    auto it = mismatched.find(version);
    return it != mismatched.end() && member < it->second.size() && it->second[member];
  }
};

class key_catalog {
 public:
  explicit key_catalog(std::size_t members) : members_(members) {}

  key_entry* find(std::string_view name);
  std::vector<std::string> names() const;
  // Inserts or replaces the metadata; holdings and public keys are kept.
  key_entry& put(const std::string& name, const key_metadata& meta);
  void erase(std::string_view name);
  // Merges what one member holds: the newer metadata wins, the member is marked as a holder.
  key_entry& merge_from_member(std::size_t member, const std::string& name, const key_metadata& meta);

  bool loaded() const { return loaded_; }
  void set_loaded() { loaded_ = true; }

 private:
  std::size_t members_;
  std::map<std::string, key_entry, std::less<>> entries_;
  bool loaded_ = false;
};

}  // namespace hsmb
