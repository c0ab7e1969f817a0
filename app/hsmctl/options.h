// hsmctl's command line: global options, per-command options and operands, and the exit codes.
#pragma once

#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace hsmb::hsmctl {

// The exit status (README "hsmctl", hsmctl --help).
enum exit_code : int {
  exit_ok = 0,
  exit_negative = 1,     // the answer is "no": verify invalid, sync drift, audit chain broken
  exit_error = 2,        // bad usage, or the broker answered an error (4xx, 5xx, not serving)
  exit_unreachable = 3,  // no answer: cannot connect, or timed out
};

// Ends the program with this status once the stack has unwound (main catches it).
struct exit_status {
  int code;
};
// "hsmctl: MESSAGE" on stderr, then exit with `code`.
[[noreturn]] void fail(const std::string& message, int code = exit_error);

struct options {
  std::optional<std::string> socket, address;
  std::string token;
  bool json = false;                          // --output json (or --json)
  std::set<std::string, std::less<>> flags;  // --hex, --repair, ... as given
  std::map<std::string, std::string, std::less<>> values;  // --type aes128-gcm96, ...
  std::vector<std::string> args;  // command and its operands

  bool flag(std::string_view name) const { return flags.contains(name); }
  std::optional<std::string> value(std::string_view name) const;
  // Refuses (exit 2) any command option given that is not in `accepted`: an option a command
  // does not read must not be ignored silently.
  void accept(std::initializer_list<std::string_view> accepted) const;
  // Refuses fewer than `min` or more than `max` operands after the first `words` (command words).
  void operands(std::size_t words, std::size_t min, std::size_t max) const;
};

// Parses argv; --help prints the usage and exits 0.
options parse_options(int argc, char** argv);

extern const char* const usage;

}  // namespace hsmb::hsmctl
