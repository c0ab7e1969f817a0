#include "app/supervisor/command_line.h"

#include <iostream>

namespace hsmb::app {
namespace {

int usage(int code) {
  (code == 0 ? std::cout : std::cerr) << "usage: hsm-supervisor --config FILE\n"
                                         "  runs hsm-broker (found next to this program) on sockets it owns; see README\n";
  return code;
}

}  // namespace

std::expected<std::string, int> parse_supervisor_command_line(int argc, char** argv) {
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) config_path = argv[++i];
    else if (a == "--help" || a == "-h") return std::unexpected(usage(0));
    else return std::unexpected(usage(2));
  }
  if (config_path.empty()) return std::unexpected(usage(2));
  return config_path;
}

}  // namespace hsmb::app
