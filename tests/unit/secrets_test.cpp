// Secret holders (common/bytes.h) wipe what they held, whatever its size: the memory is read
// after release. An object's own storage is a buffer the test owns (placement new, destroy, read
// the buffer); heap blocks are seen through the release observer, which wiping_allocator calls
// with each block after wiping it and before freeing it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"

using namespace hsmb;

namespace {

// Keeps the compiler from dropping stores to, or assuming the contents of, memory it cannot see
// being read (a destroyed object's storage).
void escape(const void* p) { asm volatile("" : : "r"(p) : "memory"); }

struct released_block {
  const void* data;
  std::size_t size;
  bool wiped;  // every byte zero when it was handed back
};

std::vector<released_block>* released = nullptr;

void record_release(const void* data, std::size_t size) noexcept {
  if (!released) return;
  auto* p = static_cast<const unsigned char*>(data);
  released->push_back({data, size, std::all_of(p, p + size, [](unsigned char c) { return c == 0; })});
}

// Watches every block a wiping_allocator releases while it lives.
struct release_watch {
  std::vector<released_block> blocks;
  release_observer previous;
  release_watch() : previous(set_release_observer(record_release)) {
    blocks.reserve(256);
    released = &blocks;
  }
  ~release_watch() {
    released = nullptr;
    set_release_observer(previous);
  }
  bool all_wiped() const {
    return std::all_of(blocks.begin(), blocks.end(), [](auto& b) { return b.wiped; });
  }
  // The block at `data` was released, and wiped.
  bool released_wiped(const void* data) const {
    return std::any_of(blocks.begin(), blocks.end(), [&](auto& b) { return b.data == data && b.wiped; });
  }
};

bool holds(const void* data, std::size_t size, std::string_view secret) {
  std::string_view all(static_cast<const char*>(data), size);
  return all.find(secret) != std::string_view::npos;
}

// Storage for one object, owned by the test.
template <class T>
struct storage {
  alignas(T) unsigned char bytes[sizeof(T)];
  storage() { std::memset(bytes, 0, sizeof bytes); }
  template <class... Args>
  T* make(Args&&... args) {
    T* p = new (bytes) T(std::forward<Args>(args)...);
    escape(p);
    return p;
  }
  void destroy(T* p) {
    escape(p);
    p->~T();
    escape(bytes);
  }
  bool holds(std::string_view secret) const { return ::holds(bytes, sizeof bytes, secret); }
  bool contains(const void* p) const {
    auto* c = static_cast<const unsigned char*>(p);
    return c >= bytes && c < bytes + sizeof bytes;
  }
};

// PINs of every length around the inline buffer's (15 characters in libstdc++).
std::string pin_of_length(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('A' + (i * 7 + n) % 26));
  return s;
}

// The characters of s's block past its end, up to `old_size` (where dropped characters were).
bool tail_wiped(const secure_string& s, std::size_t old_size) {
  const char* p = s.data();
  for (std::size_t i = s.size(); i <= std::min(old_size, s.capacity()); ++i)
    if (p[i] != 0) return false;
  return true;
}

}  // namespace

TEST_CASE("the test can see a secret left in an object's storage") {
  // A plain std::string keeps a short value inside the object, and nothing wipes it: this is
  // what the checks below would find if secure_string still did the same.
  storage<std::string> st;
  std::string pin = "4711";
  auto* s = st.make(pin);
  st.destroy(s);
  CHECK(st.holds(pin));
}

TEST_CASE("a secure_string of any length keeps nothing in the object and wipes its block") {
  for (std::size_t n = 1; n <= 40; ++n) {
    CAPTURE(n);
    std::string pin = pin_of_length(n);
    release_watch watch;
    storage<secure_string> st;
    auto* s = st.make(pin.c_str());
    REQUIRE(*s == pin);
    CHECK_FALSE(st.contains(s->data()));  // never the inline buffer
    CHECK_FALSE(st.holds(pin));
    const void* block = s->data();
    st.destroy(s);
    CHECK_FALSE(st.holds(pin));
    CHECK(watch.released_wiped(block));
    CHECK(watch.all_wiped());
  }
}

TEST_CASE("every way of making a secure_string keeps it out of the object") {
  std::string pin = "0815";
  std::vector<std::uint8_t> raw(pin.begin(), pin.end());
  byte_view view(raw);
  release_watch watch;
  auto check = [&](auto make) {
    storage<secure_string> st;
    auto* s = make(st);
    CHECK(*s == pin);
    CHECK_FALSE(st.contains(s->data()));
    st.destroy(s);
    CHECK_FALSE(st.holds(pin));
  };
  check([&](auto& st) { return st.make(pin.c_str()); });
  check([&](auto& st) { return st.make(pin.data(), pin.size()); });
  check([&](auto& st) { return st.make(pin); });                 // from a std::string (explicit)
  check([&](auto& st) { return st.make(view.begin(), view.end()); });  // bytes, as decode_hello does
  check([&](auto& st) { return st.make(pin.begin(), pin.end()); });
  check([&](auto& st) { return st.make(std::initializer_list<char>{'0', '8', '1', '5'}); });
  check([&](auto& st) {
    auto* s = st.make();
    *s = pin.c_str();
    return s;
  });
  check([&](auto& st) {
    auto* s = st.make();
    *s = pin;  // std::string, as config.cpp does
    return s;
  });
  check([&](auto& st) {
    auto* s = st.make();
    s->assign(view.begin(), view.end());
    return s;
  });
  check([&](auto& st) {
    auto* s = st.make();
    s->append("08").append(std::string("15"));
    return s;
  });
  check([&](auto& st) {
    auto* s = st.make();
    for (char c : pin) *s += c;
    return s;
  });
  check([&](auto& st) {
    auto* s = st.make();
    std::istringstream in(pin + "\n");
    std::getline(in, *s);  // as hsm-broker reads --so-pin-file
    return s;
  });
  check([&](auto& st) {
    secure_string a = "08";
    return st.make(a + "15");
  });
  check([&](auto& st) {
    secure_string a = "xx0815yy";
    return st.make(a.substr(2, 4));
  });
  CHECK(watch.all_wiped());
}

TEST_CASE("a moved secure_string leaves nothing behind in its source") {
  std::string pin = "2468";
  release_watch watch;
  storage<secure_string> from_st, to_st;
  auto* from = from_st.make(pin.c_str());
  const void* block = from->data();
  auto* to = to_st.make(std::move(*from));
  CHECK(*to == pin);
  CHECK(to->data() == block);  // the block changed hands
  CHECK(from->empty());
  CHECK_FALSE(from_st.contains(from->data()));  // the source got an empty block, not the inline buffer
  CHECK_FALSE(holds(from->data(), from->capacity() + 1, pin));
  CHECK_FALSE(from_st.holds(pin));
  CHECK_FALSE(to_st.holds(pin));
  // A moved-from string takes a secret again without the inline buffer.
  *from = "13";
  CHECK_FALSE(from_st.contains(from->data()));
  from_st.destroy(from);
  to_st.destroy(to);
  CHECK_FALSE(from_st.holds(pin));
  CHECK_FALSE(from_st.holds("13"));
  CHECK_FALSE(to_st.holds(pin));
  CHECK(watch.released_wiped(block));
  CHECK(watch.all_wiped());
}

TEST_CASE("move assignment wipes what the target held, and the source keeps nothing") {
  release_watch watch;
  storage<secure_string> a_st, b_st;
  auto* a = a_st.make("1111");
  auto* b = b_st.make("2222");
  *a = std::move(*b);
  CHECK(*a == "2222");
  CHECK(b->empty());
  CHECK_FALSE(b_st.contains(b->data()));
  CHECK_FALSE(holds(b->data(), b->capacity() + 1, "1111"));  // b now owns a's old block, wiped
  CHECK_FALSE(holds(b->data(), b->capacity() + 1, "2222"));
  CHECK_FALSE(holds(a->data(), a->capacity() + 1, "1111"));
  a_st.destroy(a);
  b_st.destroy(b);
  for (auto* st : {&a_st, &b_st}) {
    CHECK_FALSE(st->holds("1111"));
    CHECK_FALSE(st->holds("2222"));
  }
  CHECK(watch.all_wiped());
}

TEST_CASE("copies of a secure_string have blocks of their own, each wiped") {
  release_watch watch;
  storage<secure_string> a_st, b_st, c_st;
  auto* a = a_st.make("9753");
  auto* b = b_st.make(*a);
  auto* c = c_st.make("x");
  *c = *a;
  CHECK(*b == "9753");
  CHECK(*c == "9753");
  CHECK(b->data() != a->data());
  CHECK_FALSE(b_st.contains(b->data()));
  CHECK_FALSE(c_st.contains(c->data()));
  std::vector<const void*> blocks{a->data(), b->data(), c->data()};
  a_st.destroy(a);
  b_st.destroy(b);
  c_st.destroy(c);
  for (auto* st : {&a_st, &b_st, &c_st}) CHECK_FALSE(st->holds("9753"));
  for (auto* p : blocks) CHECK(watch.released_wiped(p));
  CHECK(watch.all_wiped());
}

TEST_CASE("characters a secure_string drops are wiped at once") {
  const std::string long_pin = "123456789abcdefghij";  // longer than the inline buffer, too
  auto fresh = [&] { return secure_string(long_pin.c_str()); };
  auto n = long_pin.size();
  {
    auto s = fresh();
    s.clear();
    CHECK(s.empty());
    CHECK(tail_wiped(s, n));
  }
  {
    auto s = fresh();
    s.resize(3);
    CHECK(s == "123");
    CHECK(tail_wiped(s, n));
    s.resize(1, 'x');
    CHECK(tail_wiped(s, n));
  }
  {
    auto s = fresh();
    s.pop_back();
    CHECK(tail_wiped(s, n));
  }
  {
    auto s = fresh();
    s.erase(2, 5);
    CHECK(s == "12" + long_pin.substr(7));
    CHECK(tail_wiped(s, n));
    s.erase(s.begin());
    CHECK(tail_wiped(s, n));
    s.erase(s.begin(), s.end());
    CHECK(tail_wiped(s, n));
  }
  {
    auto s = fresh();
    s = "ab";  // a shorter value over a longer one
    CHECK(s == "ab");
    CHECK(tail_wiped(s, n));
    s = fresh();
    s = std::string("cd");
    CHECK(tail_wiped(s, n));
    s = fresh();
    secure_string other = "ef";
    s = other;
    CHECK(tail_wiped(s, n));
    s = fresh();
    std::vector<std::uint8_t> raw{'g'};
    s.assign(raw.begin(), raw.end());
    CHECK(s == "g");
    CHECK(tail_wiped(s, n));
  }
}

TEST_CASE("a secure_string never goes back to the inline buffer") {
  release_watch watch;
  storage<secure_string> st;
  auto* s = st.make("short");
  const void* first = s->data();
  s->append(std::string(100, 'z'));  // grows: the first block goes back, wiped
  CHECK(watch.released_wiped(first));
  s->resize(2);
  s->shrink_to_fit();  // kept: a std::string would move "sh" into the object here
  s->reserve(1);
  CHECK_FALSE(st.contains(s->data()));
  secure_string other = "other";
  s->swap(other);
  CHECK(*s == "other");
  CHECK(other == "sh");
  CHECK_FALSE(st.contains(s->data()));
  st.destroy(s);
  CHECK_FALSE(st.holds("short"));
  CHECK_FALSE(st.holds("other"));
  CHECK(watch.all_wiped());
}

TEST_CASE("secure_strings in containers keep nothing in the containers' memory") {
  release_watch watch;
  {
    storage<std::optional<secure_string>> st;
    auto* o = st.make();
    *o = secure_string("5555");
    CHECK_FALSE(st.contains((*o)->data()));
    o->reset();
    CHECK_FALSE(st.holds("5555"));
    *o = secure_string("6666");
    st.destroy(o);
    CHECK_FALSE(st.holds("6666"));
  }
  {
    std::vector<secure_string> pins;
    for (int i = 0; i < 50; ++i) pins.emplace_back(std::to_string(1000 + i));  // the vector grows (copies)
    for (auto& p : pins) {
      auto* b = reinterpret_cast<const unsigned char*>(pins.data());
      auto* d = reinterpret_cast<const unsigned char*>(p.data());
      CHECK_FALSE((d >= b && d < b + pins.size() * sizeof(secure_string)));
    }
    std::map<std::string, secure_string> by_member;
    by_member["hsm1"] = pins[0];
    by_member["hsm2"] = std::move(pins[1]);
    CHECK(by_member["hsm1"] == "1000");
    CHECK(by_member["hsm2"] == "1001");
  }
  CHECK(watch.all_wiped());
  CHECK(watch.blocks.size() >= 50);
}

TEST_CASE("secure_bytes wipes every block it releases, and moves hand the block over") {
  const std::vector<std::uint8_t> secret{0xde, 0xad, 0xbe, 0xef, 1, 2, 3};
  auto has_secret = [&](const void* p, std::size_t n) {
    return holds(p, n, std::string_view(reinterpret_cast<const char*>(secret.data()), secret.size()));
  };
  release_watch watch;
  storage<secure_bytes> a_st, b_st, c_st;
  auto* a = a_st.make(secret.begin(), secret.end());
  CHECK_FALSE(a_st.contains(a->data()));  // a vector keeps nothing inline
  const void* block = a->data();
  auto* b = b_st.make(std::move(*a));  // move: the block changes hands
  CHECK(b->data() == block);
  CHECK(a->empty());
  CHECK(a->capacity() == 0);
  auto* c = c_st.make(*b);  // copy: a block of its own
  CHECK(c->data() != b->data());
  *a = *c;
  const void* a_block = a->data();
  *a = std::move(*b);  // a's block goes back, wiped
  CHECK(watch.released_wiped(a_block));
  CHECK(a->data() == block);
  const void* c_block = c->data();
  c->resize(1000);  // growth: the old block goes back, wiped
  CHECK(watch.released_wiped(c_block));
  c_block = c->data();
  c->clear();
  c->shrink_to_fit();
  CHECK(watch.released_wiped(c_block));
  a_st.destroy(a);
  b_st.destroy(b);
  c_st.destroy(c);
  CHECK(watch.released_wiped(block));
  for (auto* st : {&a_st, &b_st, &c_st}) CHECK_FALSE(has_secret(st->bytes, sizeof st->bytes));
  CHECK(watch.all_wiped());
}

TEST_CASE("secure_string keeps the std::string interface") {
  secure_string s("abc");
  CHECK(s == "abc");
  CHECK("abc" == s);
  CHECK(s == std::string("abc"));
  CHECK(std::string("abc") == s);
  CHECK(s == std::string_view("abc"));
  CHECK(s < secure_string("abd"));
  CHECK(s != "abd");
  std::string_view v = s;
  CHECK(v == "abc");
  CHECK(s.find('b') == 1);
  CHECK(s.starts_with("ab"));
  CHECK(std::string(s.begin(), s.end()) == "abc");
  secure_string t = s + 'd' + "e" + std::string_view("f");
  CHECK(t == "abcdef");
  t.insert(0, "0");  // the base's modifiers still work, in the allocator's memory
  CHECK(t == "0abcdef");
  secure_string u(3, 'x');
  CHECK(u == "xxx");
  std::optional<secure_string> o = std::move(u);
  CHECK(*o == "xxx");
}
