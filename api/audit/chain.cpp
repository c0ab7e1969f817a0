#include "api/audit/chain.h"

#include "api/audit/sha256.h"

namespace hsmb::api::audit {
namespace {

constexpr std::string_view chain_key = ",\"chain\":\"";
constexpr std::size_t chain_hex = 64;
constexpr std::size_t sealed_tail = chain_key.size() + chain_hex + 2;  // ,"chain":"<64>"}

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string_view without_newline(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  return line;
}

}  // namespace

std::string chain_next(std::string_view previous, std::string_view body) { return sha256_hex(previous, body); }

std::string seal_line(std::string_view previous, std::string_view body) {
  std::string line, chain(previous);
  append_sealed(line, chain, body);
  return line;
}

void append_sealed(std::string& out, std::string& chain, std::string_view body) {
  char next[chain_hex];
  sha256_hex(next, chain, body);
  chain.assign(next, chain_hex);  // in place: a 64-character string keeps its buffer
  out += body.substr(0, body.size() - 1);  // without the closing '}'
  out += chain_key;
  out += chain;
  out += "\"}\n";
}

std::optional<std::string> chain_of(std::string_view line) {
  line = without_newline(line);
  if (line.size() < sealed_tail + 1 || !line.ends_with("\"}")) return std::nullopt;
  auto tail = line.substr(line.size() - sealed_tail);
  if (!tail.starts_with(chain_key)) return std::nullopt;
  auto c = tail.substr(chain_key.size(), chain_hex);
  if (!is_hex(c)) return std::nullopt;
  return std::string(c);
}

verify_result verify_chain(std::istream& in) {
  verify_result r;
  std::string previous(chain_start), line;
  while (std::getline(in, line)) {
    ++r.lines;
    auto claimed = chain_of(line);
    if (!claimed) {
      r = {false, r.lines, r.lines, "no chain field at the end of the line"};
      return r;
    }
    std::string body = line.substr(0, line.size() - sealed_tail) + "}";
    if (chain_next(previous, body) != *claimed) {
      r = {false, r.lines, r.lines, "chain mismatch: the line was altered, or a line before it removed or moved"};
      return r;
    }
    previous = *claimed;
  }
  return r;
}

}  // namespace hsmb::api::audit
