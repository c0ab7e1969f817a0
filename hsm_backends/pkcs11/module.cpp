// Loading, initialising and finalising a PKCS#11 library.
#include "hsm_backends/pkcs11/module.h"

#include <dlfcn.h>

#include <map>
#include <mutex>

namespace hsmb::pkcs11 {
namespace {

std::mutex registry_mutex;
std::map<std::string, std::weak_ptr<module>>& registry() {
  static std::map<std::string, std::weak_ptr<module>> modules;
  return modules;
}

}  // namespace

hsm_error p11_error(CK_RV rv, std::string_view function, std::string_view label) {
  std::string msg(function);
  msg += " failed";
  if (!label.empty()) {
    msg += " on '";
    msg += label;
    msg += "'";
  }
  msg += ": " + ckr_name(rv);
  return {rv, std::move(msg)};
}

hsm_result<std::shared_ptr<module>> module::acquire(const std::string& path) {
  std::lock_guard lock(registry_mutex);
  if (auto existing = registry()[path].lock()) return existing;
  auto loaded = load(path);
  if (loaded) registry()[path] = *loaded;
  return loaded;
}

hsm_result<std::shared_ptr<module>> module::load(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    return std::unexpected(hsm_error{ckr_module_load_failed,
                                     "dlopen '" + path + "' failed: " + (why ? why : "unknown error")});
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle, "C_GetFunctionList"));
  CK_FUNCTION_LIST* fn = nullptr;
  if (!get_list || get_list(&fn) != CKR_OK || !fn) {
    dlclose(handle);
    return std::unexpected(hsm_error{ckr_module_load_failed, "C_GetFunctionList failed in '" + path + "'"});
  }
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  if (CK_RV rv = fn->C_Initialize(&args); rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    dlclose(handle);
    return std::unexpected(p11_error(rv, "C_Initialize", path));
  }
  return std::shared_ptr<module>(new module(handle, fn));
}

module::~module() {
  std::lock_guard lock(registry_mutex);  // an acquire() racing with us must not see a half-finalised module
  fn_->C_Finalize(nullptr);
  dlclose(handle_);
}

}  // namespace hsmb::pkcs11
