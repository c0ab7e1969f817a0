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

// Handles by (CKA_LABEL, CKA_CLASS), found once with C_FindObjects and then served from memory,
// so requests cost no object search. Thread-safe.
class object_cache {
 public:
  // The cached handle, or the first object found on the token; ckr_object_not_found if none.
  hsm_result<CK_OBJECT_HANDLE> find(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, const std::string& label,
                                    CK_OBJECT_CLASS cls);
  void put(const std::string& label, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE h);
  void drop(const std::string& label, CK_OBJECT_CLASS cls);
  void clear();  // after a logout: handles of private objects are gone

 private:
  std::mutex mutex_;
  std::map<std::pair<std::string, CK_OBJECT_CLASS>, CK_OBJECT_HANDLE> handles_;
};

}  // namespace hsmb::pkcs11
