// Object search, attribute reads and the handle cache.
#include "hsm_backends/pkcs11/objects.h"

#include <algorithm>

#include "hsm_backends/pkcs11/module.h"

namespace hsmb::pkcs11 {
namespace {

// Ends a search however the caller leaves, so the session can start the next operation.
struct find_guard {
  CK_FUNCTION_LIST* fn;
  CK_SESSION_HANDLE s;
  ~find_guard() { fn->C_FindObjectsFinal(s); }
};

}  // namespace

hsm_result<std::vector<CK_OBJECT_HANDLE>> find_objects(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s,
                                                       attribute_list& query) {
  if (CK_RV rv = fn->C_FindObjectsInit(s, query.data(), query.size()); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_FindObjectsInit"));
  find_guard guard{fn, s};
  std::vector<CK_OBJECT_HANDLE> found;
  for (;;) {
    CK_OBJECT_HANDLE batch[64];
    CK_ULONG n = 0;
    if (CK_RV rv = fn->C_FindObjects(s, batch, std::size(batch), &n); rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_FindObjects"));
    if (n == 0) return found;
    found.insert(found.end(), batch, batch + n);
  }
}

hsm_result<bytes> get_attribute(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                CK_ATTRIBUTE_TYPE type, std::string_view label) {
  CK_ATTRIBUTE a{type, nullptr, 0};
  if (CK_RV rv = fn->C_GetAttributeValue(s, h, &a, 1); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_GetAttributeValue", label));
  bytes value(a.ulValueLen);
  a.pValue = value.data();
  if (CK_RV rv = fn->C_GetAttributeValue(s, h, &a, 1); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_GetAttributeValue", label));
  value.resize(a.ulValueLen);
  return value;
}

hsm_result<CK_ULONG> get_ulong_attribute(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                         CK_ATTRIBUTE_TYPE type, std::string_view label) {
  CK_ULONG v = 0;
  CK_ATTRIBUTE a{type, &v, sizeof v};
  if (CK_RV rv = fn->C_GetAttributeValue(s, h, &a, 1); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_GetAttributeValue", label));
  return v;
}

hsm_result<chosen_object> choose_object(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, const std::vector<CK_OBJECT_HANDLE>& found,
                                        std::string_view label) {
  std::vector<std::pair<bytes, CK_OBJECT_HANDLE>> by_id;
  chosen_object out;
  for (CK_OBJECT_HANDLE h : found) {
    auto id = get_attribute(fn, s, h, CKA_ID, label);
    if (id) by_id.emplace_back(std::move(*id), h);
    else if (id.error().ckr == CKR_OBJECT_HANDLE_INVALID || id.error().ckr == CKR_ATTRIBUTE_TYPE_INVALID)
      out.rest.push_back(h);  // destroyed meanwhile, or without a CKA_ID (a data object): never preferred
    else
      return std::unexpected(id.error());
  }
  std::sort(by_id.begin(), by_id.end());
  if (by_id.empty()) {  // none has an ID: the search's first, and which is right cannot be told
    out.handle = out.rest.front();
    out.rest.erase(out.rest.begin());
    out.tied = !out.rest.empty();
    return out;
  }
  out.handle = by_id.front().second;
  out.tied = by_id.size() > 1 && by_id[1].first == by_id[0].first;
  for (std::size_t i = 1; i < by_id.size(); ++i) out.rest.push_back(by_id[i].second);
  return out;
}

hsm_result<CK_OBJECT_HANDLE> object_cache::find(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s,
                                                const std::string& label, CK_OBJECT_CLASS cls,
                                                chosen_object* duplicates) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = handles_.find({label, cls}); it != handles_.end()) return it->second;
  }
  attribute_list query;
  query.add_ulong(CKA_CLASS, cls).add(CKA_LABEL, label);
  auto found = find_objects(fn, s, query);
  if (!found) return std::unexpected(found.error());
  if (found->empty()) return std::unexpected(hsm_error{ckr_object_not_found, "no object labelled '" + label + "'"});
  chosen_object pick{found->front(), {}, false};
  if (found->size() > 1) {
    auto chosen = choose_object(fn, s, *found, label);
    if (!chosen) return std::unexpected(chosen.error());
    pick = std::move(*chosen);
  }
  put(label, cls, pick.handle);
  if (duplicates) *duplicates = std::move(pick);
  return duplicates ? duplicates->handle : pick.handle;
}

void object_cache::put(const std::string& label, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE h) {
  std::lock_guard lock(mutex_);
  handles_[{label, cls}] = h;
}

void object_cache::drop(const std::string& label, CK_OBJECT_CLASS cls) {
  std::lock_guard lock(mutex_);
  handles_.erase({label, cls});
}

void object_cache::clear() {
  std::lock_guard lock(mutex_);
  handles_.clear();
}

}  // namespace hsmb::pkcs11
