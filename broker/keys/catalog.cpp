#include "broker/keys/catalog.h"

namespace hsmb {

key_entry* key_catalog::find(std::string_view name) {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::string> key_catalog::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (auto& [name, e] : entries_) out.push_back(name);
  return out;
}

key_entry& key_catalog::put(const std::string& name, const key_metadata& meta) {
  auto& e = entries_[name];
  if (e.name.empty()) {
    e.name = name;
    e.held_by.assign(members_, false);
  }
  e.meta = meta;
  return e;
}

void key_catalog::erase(std::string_view name) {
  if (auto it = entries_.find(name); it != entries_.end()) entries_.erase(it);
}

key_entry& key_catalog::merge_from_member(std::size_t member, const std::string& name, const key_metadata& meta) {
  auto* existing = find(name);
  auto& e = (existing == nullptr || meta.latest_version > existing->meta.latest_version) ? put(name, meta) : *existing;
  e.held_by[member] = true;
  return e;
}

}  // namespace hsmb
