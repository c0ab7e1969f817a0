#include "common/bytes.h"

#include <string.h>

#include <atomic>

namespace hsmb {
namespace {

std::atomic<release_observer> observer{nullptr};

}  // namespace

void secure_wipe(void* data, std::size_t size) noexcept {
  // glibc's explicit_bzero: the vectorised memset behind a barrier the compiler cannot remove.
  // OPENSSL_cleanse stores a byte at a time through a volatile pointer: measured (callgrind) at
  // a tenth of the broker's instructions for a 4 KiB encrypt.
  if (data != nullptr && size != 0) ::explicit_bzero(data, size);
}

release_observer set_release_observer(release_observer o) noexcept { return observer.exchange(o); }

void notify_release(const void* data, std::size_t size) noexcept {
  if (auto o = observer.load(std::memory_order_relaxed)) o(data, size);
}

}  // namespace hsmb
