#include "common/bytes.h"

#include <openssl/crypto.h>

#include <atomic>

namespace hsmb {
namespace {

std::atomic<release_observer> observer{nullptr};

}  // namespace

void secure_wipe(void* data, std::size_t size) noexcept {
  if (data != nullptr && size != 0) OPENSSL_cleanse(data, size);
}

release_observer set_release_observer(release_observer o) noexcept { return observer.exchange(o); }

void notify_release(const void* data, std::size_t size) noexcept {
  if (auto o = observer.load(std::memory_order_relaxed)) o(data, size);
}

}  // namespace hsmb
