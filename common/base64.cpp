#include "common/base64.h"

#include <array>

namespace hsmb {
namespace {

constexpr std::string_view std_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view url_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Written into a buffer of the final size: appending a character at a time cost about 28
// instructions a byte, most of the broker's CPU for a 4 KiB payload (bench/RESULTS.md, [14]).
std::string encode(byte_view in, std::string_view alphabet, bool pad) {
  std::size_t full = in.size() / 3, rest = in.size() % 3;
  std::string out(full * 4 + (rest == 0 ? 0 : pad ? 4 : rest + 1), '\0');
  const char* abc = alphabet.data();
  const std::uint8_t* p = in.data();
  char* o = out.data();
  for (std::size_t k = 0; k < full; ++k, p += 3, o += 4) {
    std::uint32_t v = (std::uint32_t(p[0]) << 16) | (std::uint32_t(p[1]) << 8) | p[2];
    o[0] = abc[v >> 18];
    o[1] = abc[(v >> 12) & 63];
    o[2] = abc[(v >> 6) & 63];
    o[3] = abc[v & 63];
  }
  if (rest == 0) return out;
  std::uint32_t v = (std::uint32_t(p[0]) << 16) | (rest == 2 ? std::uint32_t(p[1]) << 8 : 0);
  *o++ = abc[v >> 18];
  *o++ = abc[(v >> 12) & 63];
  if (rest == 2) *o++ = abc[(v >> 6) & 63];
  if (pad) {
    *o++ = '=';
    if (rest == 1) *o++ = '=';
  }
  return out;
}

std::array<std::int8_t, 256> reverse(std::string_view alphabet) {
  std::array<std::int8_t, 256> r;
  r.fill(-1);
  for (std::size_t i = 0; i < alphabet.size(); ++i) r[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  return r;
}

// Four characters at a time into a buffer of the final size; any character outside the
// alphabet (a negative entry) fails the whole input.
std::optional<secure_bytes> decode(std::string_view in, const std::array<std::int8_t, 256>& rev, bool padded) {
  std::size_t pad = 0;
  if (padded) {
    if (in.size() % 4 != 0) return std::nullopt;
    while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  } else if (in.size() % 4 == 1) {
    return std::nullopt;
  }
  std::string_view body = in.substr(0, in.size() - pad);
  std::size_t quads = body.size() / 4, tail = body.size() % 4;  // tail: 0, 2 or 3 characters
  secure_bytes out(quads * 3 + (tail == 0 ? 0 : tail - 1));
  auto s = reinterpret_cast<const unsigned char*>(body.data());
  std::uint8_t* o = out.data();
  for (std::size_t k = 0; k < quads; ++k, s += 4, o += 3) {
    int a = rev[s[0]], b = rev[s[1]], c = rev[s[2]], d = rev[s[3]];
    if ((a | b | c | d) < 0) return std::nullopt;
    std::uint32_t v = (std::uint32_t(a) << 18) | (std::uint32_t(b) << 12) | (std::uint32_t(c) << 6) | std::uint32_t(d);
    o[0] = static_cast<std::uint8_t>(v >> 16);
    o[1] = static_cast<std::uint8_t>(v >> 8);
    o[2] = static_cast<std::uint8_t>(v);
  }
  if (tail == 0) return out;
  int a = rev[s[0]], b = rev[s[1]], c = tail == 3 ? rev[s[2]] : 0;
  if ((a | b | c) < 0) return std::nullopt;
  std::uint32_t v = (std::uint32_t(a) << 18) | (std::uint32_t(b) << 12) | (std::uint32_t(c) << 6);
  if ((v & (tail == 3 ? 0xFFu : 0xFFFFu)) != 0) return std::nullopt;  // non-canonical trailing bits
  o[0] = static_cast<std::uint8_t>(v >> 16);
  if (tail == 3) o[1] = static_cast<std::uint8_t>(v >> 8);
  return out;
}

}  // namespace

std::string base64_encode(byte_view in) { return encode(in, std_alphabet, true); }
std::string base64url_encode(byte_view in) { return encode(in, url_alphabet, false); }

std::optional<secure_bytes> base64_decode(std::string_view in) {
  static const auto rev = reverse(std_alphabet);
  return decode(in, rev, true);
}

std::optional<secure_bytes> base64url_decode(std::string_view in) {
  static const auto rev = reverse(url_alphabet);
  if (!in.empty() && in.back() == '=') return std::nullopt;
  return decode(in, rev, false);
}

void hex_encode_to(char* out, byte_view in) {
  static constexpr char digits[] = "0123456789abcdef";
  for (auto b : in) {
    *out++ = digits[b >> 4];
    *out++ = digits[b & 15];
  }
}

std::string hex_encode(byte_view in) {
  std::string out(in.size() * 2, '\0');
  hex_encode_to(out.data(), in);
  return out;
}

}  // namespace hsmb
