#include "app/hsmctl/options.h"

#include <cstdlib>
#include <iostream>

namespace hsmb::hsmctl {
namespace {

// Options that take a value, and flags, that some command reads (options::accept checks which).
const std::set<std::string, std::less<>> valued = {"--type", "--hash", "--signature-algorithm", "--input-file",
                                                   "--key-version", "--bits", "--min-decryption-version",
                                                   "--min-encryption-version", "--deletion-allowed",
                                                   "--auto-rotate-period"};
const std::set<std::string, std::less<>> flag_names = {"--hex", "--repair", "--no-newline", "--plaintext", "--hmac"};

}  // namespace

void fail(const std::string& message, int code) {
  std::cerr << "hsmctl: " << message << "\n";
  throw exit_status{code};
}

std::optional<std::string> options::value(std::string_view name) const {
  auto it = values.find(name);
  return it == values.end() ? std::nullopt : std::optional(it->second);
}

void options::accept(std::initializer_list<std::string_view> accepted) const {
  auto known = [&](std::string_view name) {
    for (auto a : accepted)
      if (a == name) return true;
    return false;
  };
  std::string command = args.empty() ? "" : args[0];
  if (args.size() > 1 && (command == "keys" || command == "audit")) command += " " + args[1];
  for (auto& f : flags)
    if (!known(f)) fail(f + " does not apply to " + command + " (see hsmctl --help)");
  for (auto& [name, v] : values)
    if (!known(name)) fail(name + " does not apply to " + command + " (see hsmctl --help)");
}

void options::operands(std::size_t words, std::size_t min, std::size_t max) const {
  std::size_t n = args.size() > words ? args.size() - words : 0;
  if (n < min) fail("missing operand (see hsmctl --help)");
  if (n > max) fail("unexpected operand \"" + args[words + max] + "\" (see hsmctl --help)");
}

options parse_options(int argc, char** argv) {
  options o;
  bool operands_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (operands_only || arg.size() < 2 || arg[0] != '-') {
      o.args.push_back(arg);
      continue;
    }
    if (arg == "--") {
      operands_only = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      throw exit_status{exit_ok};
    }
    if (arg == "--json") {  // the older spelling of --output json
      o.json = true;
      continue;
    }
    if (flag_names.contains(arg)) {
      o.flags.insert(arg);
      continue;
    }
    std::optional<std::string> value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (arg == "-o") arg = "--output";
    bool known = arg == "--socket" || arg == "--address" || arg == "--token" || arg == "--output" || valued.contains(arg);
    if (!known) fail("unknown option " + arg + " (see hsmctl --help)");
    if (!value) {
      if (i + 1 >= argc) fail(arg + " needs a value");
      value = argv[++i];
    }
    if (arg == "--socket") o.socket = *value;
    else if (arg == "--address") o.address = *value;
    else if (arg == "--token") o.token = *value;
    else if (arg == "--output") {
      if (*value != "json" && *value != "text") fail("--output takes json or text, not \"" + *value + "\"");
      o.json = *value == "json";
    } else o.values[arg] = *value;
  }
  if (o.token.empty())
    if (const char* t = std::getenv("VAULT_TOKEN")) o.token = t;
  return o;
}

}  // namespace hsmb::hsmctl
