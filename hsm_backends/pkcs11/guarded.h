// Error helpers shared by the pkcs11_backend source files.
#pragma once

#include <exception>
#include <new>
#include <string>
#include <string_view>

#include "hsm_backends/hsm_error.h"
#include "hsm_backends/pkcs11/p11.h"

namespace hsmb::pkcs11 {

template <class T>
hsm_result<T> fail(unsigned long ckr, std::string message) {
  return std::unexpected(hsm_error{ckr, std::move(message)});
}

// Keeps exceptions (allocation failures, mostly) from crossing the backend boundary.
template <class F>
auto guarded(std::string_view what, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return std::unexpected(hsm_error{CKR_HOST_MEMORY, std::string(what) + ": out of memory"});
  } catch (const std::exception& e) {
    return std::unexpected(hsm_error{CKR_GENERAL_ERROR, std::string(what) + ": " + e.what()});
  }
}

inline bool stale_handle(unsigned long ckr) { return ckr == CKR_KEY_HANDLE_INVALID || ckr == CKR_OBJECT_HANDLE_INVALID; }

}  // namespace hsmb::pkcs11
