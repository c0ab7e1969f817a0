// hsm-broker's command line: --config FILE, with --check, or --enroll and its --so-pin-file list.
#pragma once

#include <expected>
#include <string>

#include "broker/enrollment.h"

namespace hsmb::app {

struct broker_command_line {
  std::string config_path;
  bool check_only = false;
  bool enroll = false;
  so_pins pins;  // --so-pin-file, read while parsing
};

// On error, the exit code to stop with at once: 0 after --help (usage on stdout), 2 for a bad
// argument (usage on stderr) or an unreadable --so-pin-file.
std::expected<broker_command_line, int> parse_broker_command_line(int argc, char** argv);

}  // namespace hsmb::app
