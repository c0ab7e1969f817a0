#include "common/base64.h"

#include <array>

namespace hsmb {
namespace {

constexpr std::string_view std_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view url_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(byte_view in, std::string_view alphabet, bool pad) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    std::uint32_t v = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  std::size_t rest = in.size() - i;
  if (rest == 1) {
    std::uint32_t v = in[i] << 16;
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    std::uint32_t v = (in[i] << 16) | (in[i + 1] << 8);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

std::array<std::int8_t, 256> reverse(std::string_view alphabet) {
  std::array<std::int8_t, 256> r;
  r.fill(-1);
  for (std::size_t i = 0; i < alphabet.size(); ++i) r[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  return r;
}

std::optional<secure_bytes> decode(std::string_view in, const std::array<std::int8_t, 256>& rev, bool padded) {
  std::size_t pad = 0;
  if (padded) {
    if (in.size() % 4 != 0) return std::nullopt;
    while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  } else if (in.size() % 4 == 1) {
    return std::nullopt;
  }
  std::string_view body = in.substr(0, in.size() - pad);
  secure_bytes out;
  out.reserve(body.size() * 3 / 4 + 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : body) {
    int v = rev[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return std::nullopt;  // non-canonical trailing bits
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

std::string hex_encode(byte_view in) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(in.size() * 2, '\0');
  char* to = out.data();
  for (auto b : in) {
    *to++ = digits[b >> 4];
    *to++ = digits[b & 15];
  }
  return out;
}

}  // namespace hsmb
