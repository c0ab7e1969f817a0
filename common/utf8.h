// Text that came from a client (a path, a key name) on its way into a JSON answer: JSON must be
// valid UTF-8, or clients fail to parse the error that explains what went wrong.
#pragma once

#include <string>
#include <string_view>

namespace hsmb {

// The length of the well-formed UTF-8 sequence that starts at text[i] (1 for ASCII), or 0.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i);

// `text` with every byte sequence that is not well-formed UTF-8 (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF) replaced by U+FFFD.
std::string valid_utf8(std::string_view text);

}  // namespace hsmb
