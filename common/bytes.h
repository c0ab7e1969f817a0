// Byte buffers. `secure_bytes` holds secrets (plaintexts, PINs, data keys) and is wiped on release.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hsmb {

void secure_wipe(void* data, std::size_t size) noexcept;

// Allocator that wipes memory before returning it, as SoftHSMv2's secure allocator does.
template <class T>
struct wiping_allocator {
  using value_type = T;
  wiping_allocator() noexcept = default;
  template <class U>
  wiping_allocator(const wiping_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    secure_wipe(p, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
  friend bool operator==(const wiping_allocator&, const wiping_allocator&) noexcept { return true; }
};

using bytes = std::vector<std::uint8_t>;
using secure_bytes = std::vector<std::uint8_t, wiping_allocator<std::uint8_t>>;
using secure_string = std::basic_string<char, std::char_traits<char>, wiping_allocator<char>>;
using byte_view = std::span<const std::uint8_t>;

inline byte_view as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_chars(byte_view b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace hsmb
