// Opening, lending and closing the sessions of one token.
#include "hsm_backends/pkcs11/session_pool.h"

namespace hsmb::pkcs11 {

hsm_result<std::unique_ptr<session_pool>> session_pool::open(std::shared_ptr<module> mod, CK_SLOT_ID slot,
                                                             std::uint32_t count, const secure_string& pin) {
  std::unique_ptr<session_pool> pool(new session_pool(std::move(mod)));
  for (std::uint32_t i = 0; i < std::max<std::uint32_t>(count, 1); ++i) {
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = pool->fn()->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &h);
    if (rv != CKR_OK) return std::unexpected(p11_error(rv, "C_OpenSession"));
    pool->all_.push_back(h);
  }
  auto pin_ptr = reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin.data()));
  CK_RV rv = pool->fn()->C_Login(pool->all_.front(), CKU_USER, pin_ptr, pin.size());
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) return std::unexpected(p11_error(rv, "C_Login"));
  pool->free_ = pool->all_;
  return pool;
}

session_pool::~session_pool() {
  for (CK_SESSION_HANDLE h : all_) fn()->C_CloseSession(h);
}

session_pool::lease session_pool::acquire() {
  std::unique_lock lock(mutex_);
  freed_.wait(lock, [&] { return !free_.empty(); });
  CK_SESSION_HANDLE h = free_.back();
  free_.pop_back();
  return lease(*this, h);
}

void session_pool::give_back(CK_SESSION_HANDLE h) {
  {
    std::lock_guard lock(mutex_);
    free_.push_back(h);
  }
  freed_.notify_one();
}

}  // namespace hsmb::pkcs11
