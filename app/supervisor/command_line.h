// hsm-supervisor's command line: --config FILE.
#pragma once

#include <expected>
#include <string>

namespace hsmb::app {

// The configuration file's path; on error, the exit code to stop with at once: 0 after --help
// (usage on stdout), 2 for a bad argument (usage on stderr).
std::expected<std::string, int> parse_supervisor_command_line(int argc, char** argv);

}  // namespace hsmb::app
