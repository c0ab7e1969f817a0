// The module's one lock, as PKCS#11 asks (C_Initialize): the application's mutex callbacks when it
// gives them without CKF_OS_LOCKING_OK, else the OS's. It guards the module's tables only; no
// broker request runs under it.
#pragma once

#include <mutex>

#include "pkcs11_front/cryptoki.h"

namespace hsmb::p11 {

class module_lock {
 public:
  CK_RV init(const CK_C_INITIALIZE_ARGS* args);  // CKR_OK, CKR_CANT_LOCK or the callback's error
  void reset();   // after C_Finalize
  void forget();  // in a fork child: the parent's mutex is not ours to destroy
  void lock();
  void unlock();

 private:
  std::mutex os_;
  CK_C_INITIALIZE_ARGS app_{};
  void* app_mutex_ = nullptr;
};

class lock_guard {
 public:
  explicit lock_guard(module_lock& l) : l_(l) { l_.lock(); }
  ~lock_guard() { l_.unlock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;

 private:
  module_lock& l_;
};

}  // namespace hsmb::p11
