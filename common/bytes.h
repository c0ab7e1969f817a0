// Byte buffers. `secure_bytes` and `secure_string` hold secrets (plaintexts, PINs, data keys) and
// wipe every byte they held when they release it, whatever its size.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace hsmb {

void secure_wipe(void* data, std::size_t size) noexcept;

// For tests: called with each block a wiping_allocator hands back, after the wipe and before the
// memory is freed, so a test can see what the block holds at release. nullptr: none (default).
// Returns the previous observer.
using release_observer = void (*)(const void* data, std::size_t size) noexcept;
release_observer set_release_observer(release_observer observer) noexcept;
void notify_release(const void* data, std::size_t size) noexcept;

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
    notify_release(p, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
  friend bool operator==(const wiping_allocator&, const wiping_allocator&) noexcept { return true; }
};

using bytes = std::vector<std::uint8_t>;
// A vector has no inline storage: every byte it holds comes from the allocator, which wipes it
// when the vector frees it (destruction, growth, shrink_to_fit, assignment over it). A move
// hands the block over.
using secure_bytes = std::vector<std::uint8_t, wiping_allocator<std::uint8_t>>;
using byte_view = std::span<const std::uint8_t>;

// A string for secrets (PINs). A plain basic_string with wiping_allocator is not enough:
// libstdc++ keeps strings of up to 15 characters in a buffer inside the object, which the
// allocator never sees, so short PINs were never wiped. A secure_string never uses that buffer:
// every constructor gives it a block from wiping_allocator first, no operation gives the block
// back for the inline buffer (shrink_to_fit() keeps it), and a moved-from string gets a fresh
// empty block. Characters it drops (clear, resize, erase, pop_back, a shorter assignment) are
// wiped at once; a move leaves nothing behind in the source; destruction wipes the block.
//
// It is a std::basic_string (publicly derived) so that std::getline, string_view conversion and
// the rest of the string interface work unchanged. The base's other modifiers (insert, replace,
// and any reached through a reference to the base) also write into the block; they only miss
// the immediate wipe of dropped characters, done when the block is released. The exception:
// libstdc++'s insert and replace of an iterator range go through a temporary plain string, so
// a secret goes in with assign, append, += or a constructor, which never do.
class secure_string : public std::basic_string<char, std::char_traits<char>, wiping_allocator<char>> {
 public:
  using base = std::basic_string<char, std::char_traits<char>, wiping_allocator<char>>;
  using base::npos;
  using typename base::allocator_type;
  using typename base::const_iterator;
  using typename base::const_pointer;
  using typename base::const_reference;
  using typename base::const_reverse_iterator;
  using typename base::difference_type;
  using typename base::iterator;
  using typename base::pointer;
  using typename base::reference;
  using typename base::reverse_iterator;
  using typename base::size_type;
  using typename base::traits_type;
  using typename base::value_type;

 private:
  // Anything a std::string would take as a string_view (std::string, string_view, ...).
  template <class T>
  static constexpr bool view_like = std::is_convertible_v<const T&, std::string_view> &&
                                    !std::is_convertible_v<const T&, const char*> &&
                                    !std::is_base_of_v<base, std::remove_cvref_t<T>>;

 public:
  secure_string() { own_block(); }
  secure_string(const secure_string& o) : secure_string() { base::assign(o.data(), o.size()); }
  // Allocates: the source keeps a block of its own (an empty one), so it never falls back to the
  // inline buffer. Hence not noexcept (std::vector copies secure_strings when it grows).
  secure_string(secure_string&& o) : secure_string() { base::swap(o); }
  secure_string(const char* s) : secure_string() { base::assign(s); }  // NOLINT: implicit, as std::string's
  secure_string(const char* s, size_type n) : secure_string() { base::assign(s, n); }
  secure_string(size_type n, char c) : secure_string() { base::assign(n, c); }
  template <class It, class = std::enable_if_t<!std::is_integral_v<It>>>
  secure_string(It first, It last) : secure_string() {
    append(first, last);
  }
  secure_string(std::initializer_list<char> chars) : secure_string() { base::assign(chars); }
  template <class T, class = std::enable_if_t<view_like<T>>>
  explicit secure_string(const T& text) : secure_string() {
    std::string_view v = text;
    base::assign(v.data(), v.size());
  }
  explicit secure_string(const base& o) : secure_string() { base::assign(o.data(), o.size()); }
  secure_string(std::nullptr_t) = delete;
  ~secure_string() { secure_wipe(base::data(), base::capacity() + 1); }  // the block itself is wiped again on release

  secure_string& operator=(const secure_string& o) {
    if (this != &o) shrinking([&] { base::assign(o.data(), o.size()); });
    return *this;
  }
  // The source gets this string's block, wiped, and keeps it.
  secure_string& operator=(secure_string&& o) noexcept {
    if (this != &o) {
      base::swap(o);
      o.clear();
    }
    return *this;
  }
  secure_string& operator=(const char* s) { return assign(s); }
  secure_string& operator=(char c) { return assign(1, c); }
  secure_string& operator=(std::initializer_list<char> chars) { return assign(chars); }
  template <class T, class = std::enable_if_t<view_like<T>>>
  secure_string& operator=(const T& text) {
    return assign(text);
  }
  secure_string& operator=(std::nullptr_t) = delete;

  secure_string& assign(const secure_string& o) { return *this = o; }
  secure_string& assign(secure_string&& o) noexcept { return *this = std::move(o); }
  secure_string& assign(const secure_string& o, size_type pos, size_type n = npos) {
    return shrinking([&] { base::assign(o, pos, n); });
  }
  secure_string& assign(const char* s, size_type n) {
    return shrinking([&] { base::assign(s, n); });
  }
  secure_string& assign(const char* s) {
    return shrinking([&] { base::assign(s); });
  }
  secure_string& assign(size_type n, char c) {
    return shrinking([&] { base::assign(n, c); });
  }
  // Character by character: the base's iterator assign() and append() copy the range into a
  // temporary plain string first (inline for short ranges, never wiped).
  template <class It, class = std::enable_if_t<!std::is_integral_v<It>>>
  secure_string& assign(It first, It last) {
    return shrinking([&] {
      base::clear();
      append(first, last);
    });
  }
  secure_string& assign(std::initializer_list<char> chars) {
    return shrinking([&] { base::assign(chars); });
  }
  template <class T, class = std::enable_if_t<view_like<T>>>
  secure_string& assign(const T& text, size_type pos = 0, size_type n = npos) {
    std::string_view v = text;
    return shrinking([&] { base::assign(v, pos, n); });
  }

  secure_string& append(const secure_string& o) { return append(std::string_view(o)); }
  secure_string& append(const char* s, size_type n) {
    base::append(s, n);
    return *this;
  }
  secure_string& append(const char* s) { return append(std::string_view(s)); }
  secure_string& append(size_type n, char c) {
    base::append(n, c);
    return *this;
  }
  secure_string& append(std::initializer_list<char> chars) { return append(chars.begin(), chars.size()); }
  template <class T, class = std::enable_if_t<view_like<T>>>
  secure_string& append(const T& text, size_type pos = 0, size_type n = npos) {
    std::string_view v = text;
    base::append(v, pos, n);
    return *this;
  }
  template <class It, class = std::enable_if_t<!std::is_integral_v<It>>>
  secure_string& append(It first, It last) {
    using category = typename std::iterator_traits<It>::iterator_category;
    if constexpr (std::is_base_of_v<std::forward_iterator_tag, category>)
      base::reserve(base::size() + static_cast<size_type>(std::distance(first, last)));
    for (; first != last; ++first) base::push_back(static_cast<char>(*first));
    return *this;
  }
  secure_string& operator+=(const secure_string& o) { return append(o); }
  secure_string& operator+=(const char* s) { return append(s); }
  secure_string& operator+=(char c) {
    base::push_back(c);
    return *this;
  }
  secure_string& operator+=(std::initializer_list<char> chars) { return append(chars); }
  template <class T, class = std::enable_if_t<view_like<T>>>
  secure_string& operator+=(const T& text) {
    return append(text);
  }

  void clear() noexcept {
    secure_wipe(base::data(), base::size());
    base::clear();
  }
  void resize(size_type n) {
    shrinking([&] { base::resize(n); });
  }
  void resize(size_type n, char c) {
    shrinking([&] { base::resize(n, c); });
  }
  void pop_back() {
    shrinking([&] { base::pop_back(); });
  }
  secure_string& erase(size_type pos = 0, size_type n = npos) {
    return shrinking([&] { base::erase(pos, n); });
  }
  iterator erase(const_iterator at) {
    auto i = at - base::cbegin();
    shrinking([&] { base::erase(at); });
    return base::begin() + i;
  }
  iterator erase(const_iterator first, const_iterator last) {
    auto i = first - base::cbegin();
    shrinking([&] { base::erase(first, last); });
    return base::begin() + i;
  }
  // Never shrinks: the block is kept rather than traded for the inline buffer.
  void reserve(size_type n) { base::reserve(n); }
  void shrink_to_fit() noexcept {}
  void swap(secure_string& o) noexcept { base::swap(o); }
  friend void swap(secure_string& a, secure_string& b) noexcept { a.swap(b); }

  secure_string substr(size_type pos = 0, size_type n = npos) const {
    return secure_string(std::string_view(*this).substr(pos, n));
  }

  // Comparisons with any string (the base's templates would need the same allocator).
  friend bool operator==(const secure_string& a, std::string_view b) noexcept { return std::string_view(a) == b; }
  friend auto operator<=>(const secure_string& a, std::string_view b) noexcept { return std::string_view(a) <=> b; }
  friend bool operator==(const secure_string& a, const secure_string& b) noexcept {
    return std::string_view(a) == std::string_view(b);
  }
  friend auto operator<=>(const secure_string& a, const secure_string& b) noexcept {
    return std::string_view(a) <=> std::string_view(b);
  }
  friend bool operator==(const secure_string& a, const char* b) noexcept { return std::string_view(a) == b; }
  friend auto operator<=>(const secure_string& a, const char* b) noexcept { return std::string_view(a) <=> b; }

  // Concatenation stays a secure_string (the base's operator+ would make a plain one).
  friend secure_string operator+(const secure_string& a, std::string_view b) {
    secure_string out;
    out.reserve(a.size() + b.size());
    out.base::append(a).append(b.data(), b.size());
    return out;
  }
  friend secure_string operator+(const secure_string& a, const secure_string& b) { return a + std::string_view(b); }
  friend secure_string operator+(const secure_string& a, const char* b) { return a + std::string_view(b); }
  friend secure_string operator+(const secure_string& a, char b) { return a + std::string_view(&b, 1); }

 private:
  // A block of the allocator's, so that nothing is ever kept in the inline buffer.
  void own_block() {
    static const size_type inline_capacity = base().capacity();
    base::reserve(inline_capacity + 1);
  }
  // Runs a base modifier; characters that the string no longer holds are wiped. The block never
  // shrinks, so what was dropped is still within it.
  template <class Modify>
  secure_string& shrinking(Modify modify) {
    size_type before = base::size();
    modify();
    size_type after = base::size();
    if (after < before) secure_wipe(base::data() + after + 1, std::min(before, base::capacity()) - after);
    return *this;
  }
};

inline byte_view as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_chars(byte_view b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace hsmb
