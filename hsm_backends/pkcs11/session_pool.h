// A fixed set of logged-in R/W sessions on one token, lent out one caller at a time.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "hsm_backends/pkcs11/module.h"

namespace hsmb::pkcs11 {

class session_pool {
 public:
  // A session checked out of the pool; returned when the lease ends.
  class lease {
   public:
    lease(session_pool& pool, CK_SESSION_HANDLE h) : pool_(&pool), handle_(h) {}
    lease(lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), handle_(o.handle_) {}
    lease& operator=(lease&&) = delete;
    ~lease() {
      if (pool_) pool_->give_back(handle_);
    }
    CK_SESSION_HANDLE get() const { return handle_; }

   private:
    session_pool* pool_;
    CK_SESSION_HANDLE handle_;
  };

  // Opens `count` sessions on `slot` and logs the user in (CKR_USER_ALREADY_LOGGED_IN is fine).
  static hsm_result<std::unique_ptr<session_pool>> open(std::shared_ptr<module> mod, CK_SLOT_ID slot,
                                                        std::uint32_t count, const secure_string& pin);
  ~session_pool();  // closes every session (all leases must have ended)
  session_pool(const session_pool&) = delete;
  session_pool& operator=(const session_pool&) = delete;

  // Waits until a session is free.
  lease acquire();
  CK_FUNCTION_LIST* fn() const { return mod_->fn(); }

 private:
  explicit session_pool(std::shared_ptr<module> mod) : mod_(std::move(mod)) {}
  void give_back(CK_SESSION_HANDLE h);

  std::shared_ptr<module> mod_;
  std::vector<CK_SESSION_HANDLE> all_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<CK_SESSION_HANDLE> free_;
};

}  // namespace hsmb::pkcs11
