// Little-endian field codec for worker frames: fixed-width integers and length-prefixed bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"

namespace hsmb::wire {

// Appends fields to a byte buffer (any vector-like of uint8_t).
template <class Buffer>
class writer {
 public:
  explicit writer(Buffer& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) { put_le(v, 2); }
  void u32(std::uint32_t v) { put_le(v, 4); }
  void u64(std::uint64_t v) { put_le(v, 8); }
  void blob(byte_view v) {
    u32(static_cast<std::uint32_t>(v.size()));
    out_.insert(out_.end(), v.begin(), v.end());
  }
  void str(std::string_view v) { blob(as_bytes(v)); }

 private:
  void put_le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  Buffer& out_;
};

// Reads fields; any read past the end sets failed() and returns zero/empty values, so a
// decoder checks once at the end instead of after every field.
class reader {
 public:
  explicit reader(byte_view in) : in_(in) {}
  std::uint8_t u8() { return static_cast<std::uint8_t>(get_le(1)); }
  std::uint16_t u16() { return static_cast<std::uint16_t>(get_le(2)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(get_le(4)); }
  std::uint64_t u64() { return get_le(8); }
  byte_view blob() {
    std::uint32_t n = u32();
    if (failed_ || n > in_.size() - pos_) return fail();
    byte_view v = in_.subspan(pos_, n);
    pos_ += n;
    return v;
  }
  std::string str() { return std::string(as_chars(blob())); }
  bool failed() const { return failed_; }
  // True when every byte was consumed and nothing failed: trailing garbage is an error too.
  bool ok_and_done() const { return !failed_ && pos_ == in_.size(); }

 private:
  std::uint64_t get_le(std::size_t n) {
    if (failed_ || n > in_.size() - pos_) {
      fail();
      return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t(in_[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }
  byte_view fail() {
    failed_ = true;
    return {};
  }
  byte_view in_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace hsmb::wire
