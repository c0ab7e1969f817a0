#include "pkcs11_front/module_lock.h"

namespace hsmb::p11 {

CK_RV module_lock::init(const CK_C_INITIALIZE_ARGS* args) {
  reset();
  if (!args || (args->flags & CKF_OS_LOCKING_OK) || !args->CreateMutex) return CKR_OK;
  app_ = *args;
  if (CK_RV rv = app_.CreateMutex(&app_mutex_); rv != CKR_OK) {
    app_ = {};
    app_mutex_ = nullptr;
    return rv;
  }
  return CKR_OK;
}

void module_lock::reset() {
  if (app_mutex_ && app_.DestroyMutex) app_.DestroyMutex(app_mutex_);
  app_ = {};
  app_mutex_ = nullptr;
}

void module_lock::forget() {
  app_ = {};
  app_mutex_ = nullptr;
}

void module_lock::lock() {
  if (app_mutex_) app_.LockMutex(app_mutex_);
  else os_.lock();
}

void module_lock::unlock() {
  if (app_mutex_) app_.UnlockMutex(app_mutex_);
  else os_.unlock();
}

}  // namespace hsmb::p11
