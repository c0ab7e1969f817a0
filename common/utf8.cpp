#include "common/utf8.h"

namespace hsmb {

std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  // The second byte's range depends on the first (Unicode table 3-7).
  unsigned char lo = 0x80, hi = 0xbf, c1 = byte(i + 1);
  if (c == 0xe0) lo = 0xa0;
  if (c == 0xed) hi = 0x9f;  // no surrogates
  if (c == 0xf0) lo = 0x90;
  if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
  if (c1 < lo || c1 > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
  return n;
}

std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    auto n = utf8_sequence_length(text, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
      continue;
    }
    out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace hsmb
