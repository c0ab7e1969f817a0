// A loaded and initialised PKCS#11 library, shared by every backend in the process that uses it.
#pragma once

#include <memory>
#include <string>

#include "hsm_backends/hsm_error.h"
#include "hsm_backends/pkcs11/p11.h"

namespace hsmb::pkcs11 {

class module {
 public:
  // Loads `path` (RTLD_NOW|RTLD_LOCAL) and calls C_Initialize with CKF_OS_LOCKING_OK. A module
  // already held by another backend in this process is shared, since C_Initialize and C_Finalize
  // are process-wide.
  static hsm_result<std::shared_ptr<module>> acquire(const std::string& path);

  ~module();  // C_Finalize, dlclose
  module(const module&) = delete;
  module& operator=(const module&) = delete;

  CK_FUNCTION_LIST* fn() const { return fn_; }

 private:
  module(void* handle, CK_FUNCTION_LIST* fn) : handle_(handle), fn_(fn) {}
  static hsm_result<std::shared_ptr<module>> load(const std::string& path);

  void* handle_;
  CK_FUNCTION_LIST* fn_;
};

// "C_Sign failed on 'label': CKR_KEY_HANDLE_INVALID"-style error.
hsm_error p11_error(CK_RV rv, std::string_view function, std::string_view label = {});

}  // namespace hsmb::pkcs11
