// Token objects: searching, reading attributes, and the (label, class) → handle cache.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "hsm_backends/hsm_error.h"
#include "hsm_backends/pkcs11/templates.h"

namespace hsmb::pkcs11 {

// Every object matching `query` (C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal).
hsm_result<std::vector<CK_OBJECT_HANDLE>> find_objects(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s,
                                                       attribute_list& query);
// One attribute's value; `label` names the object in error messages.
hsm_result<bytes> get_attribute(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                CK_ATTRIBUTE_TYPE type, std::string_view label);
hsm_result<CK_ULONG> get_ulong_attribute(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                         CK_ATTRIBUTE_TYPE type, std::string_view label);

// Destroys a (session or half-made) object when the scope ends, unless released.
class scoped_object {
 public:
  scoped_object(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h) : fn_(fn), s_(s), h_(h) {}
  ~scoped_object() {
    if (h_ != CK_INVALID_HANDLE) fn_->C_DestroyObject(s_, h_);
  }
  scoped_object(const scoped_object&) = delete;
  scoped_object& operator=(const scoped_object&) = delete;
  CK_OBJECT_HANDLE get() const { return h_; }
  CK_OBJECT_HANDLE release() { return std::exchange(h_, CK_INVALID_HANDLE); }

 private:
  CK_FUNCTION_LIST* fn_;
  CK_SESSION_HANDLE s_;
  CK_OBJECT_HANDLE h_;
};

// Of several objects with one label, the one with the smallest CKA_ID (see unique_object_id), so
// every process sharing the token picks the same one, and the two halves of one pair together.
// `rest` receives the others; `tied` is set when another has the same smallest CKA_ID (objects
// from before IDs were unique: which is which cannot be told).
struct chosen_object {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  std::vector<CK_OBJECT_HANDLE> rest;
  bool tied = false;
};
hsm_result<chosen_object> choose_object(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, const std::vector<CK_OBJECT_HANDLE>& found,
                                        std::string_view label);

// Handles by (CKA_LABEL, CKA_CLASS), found once with C_FindObjects and then served from memory,
// so requests cost no object search. Thread-safe.
class object_cache {
 public:
  // The cached handle, or the object found on the token (choose_object among several);
  // ckr_object_not_found if none. `duplicates`, when given, receives what a search found besides.
  hsm_result<CK_OBJECT_HANDLE> find(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, const std::string& label,
                                    CK_OBJECT_CLASS cls, chosen_object* duplicates = nullptr);
  void put(const std::string& label, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE h);
  void drop(const std::string& label, CK_OBJECT_CLASS cls);
  void clear();  // after a logout: handles of private objects are gone

 private:
  std::mutex mutex_;
  std::map<std::pair<std::string, CK_OBJECT_CLASS>, CK_OBJECT_HANDLE> handles_;
};

}  // namespace hsmb::pkcs11
