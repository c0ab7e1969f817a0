// The audit trail's hash chain. A line is `B` with its closing '}' replaced by
// `,"chain":"<C>"}` and a newline, where B is the line's JSON object without the chain field and
// C = hex(SHA-256(P || B)), P being the previous line's C as 64 hex characters (64 '0' for a
// file's first line). Removing, editing or reordering a line breaks C from that line on.
#pragma once

#include <cstddef>
#include <istream>
#include <optional>
#include <string>
#include <string_view>

namespace hsmb::api::audit {

inline constexpr std::string_view chain_start = "0000000000000000000000000000000000000000000000000000000000000000";

std::string chain_next(std::string_view previous, std::string_view body);
// The line (with its newline) that carries `body` (a JSON object's text) after `previous`.
std::string seal_line(std::string_view previous, std::string_view body);
// Appends that line to `out`; `chain` holds the previous line's chain and becomes this line's.
void append_sealed(std::string& out, std::string& chain, std::string_view body);
// The chain field of a sealed line (with or without its newline), if it ends like one.
std::optional<std::string> chain_of(std::string_view line);

struct verify_result {
  bool ok = true;
  std::size_t lines = 0;       // lines read (all of them when ok)
  std::size_t first_bad = 0;   // 1-based line number of the first break
  std::string problem;
};
// Recomputes the chain of a whole file from chain_start.
verify_result verify_chain(std::istream& in);

}  // namespace hsmb::api::audit
