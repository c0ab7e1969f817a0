#include "broker/keys/catalog.h"

namespace hsmb {

key_entry* key_catalog::find_any(std::string_view name) {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

key_entry* key_catalog::find(std::string_view name) {
  auto* e = find_any(name);
  return e && !e->meta.deleted ? e : nullptr;
}

std::vector<std::string> key_catalog::names() const {
  std::vector<std::string> out;
  for (auto& [name, e] : entries_)
    if (!e.meta.deleted) out.push_back(name);
  return out;
}

std::vector<std::string> key_catalog::all_names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (auto& [name, e] : entries_) out.push_back(name);
  return out;
}

key_entry& key_catalog::put(const std::string& name, const key_metadata& meta) {
  auto& e = entries_[name];
  if (e.name.empty()) {
    e.name = name;
    e.held_up_to.assign(members_, 0);
    e.member_revision.assign(members_, 0);
    e.member_born.assign(members_, std::string());
  }
  if (meta.deleted && !e.meta.deleted) e.public_keys.clear();
  e.meta = meta;
  return e;
}

void key_catalog::erase(std::string_view name) {
  if (auto it = entries_.find(name); it != entries_.end()) entries_.erase(it);
}

key_entry& key_catalog::merge_from_member(std::size_t member, const std::string& name, const key_metadata& meta) {
  auto* existing = find_any(name);
  bool newer = existing == nullptr || meta.revision > existing->meta.revision ||
               (meta.revision == existing->meta.revision && meta.latest_version > existing->meta.latest_version);
  auto& e = newer ? put(name, meta) : *existing;
  e.set_holding(member, meta);
  return e;
}

}  // namespace hsmb
