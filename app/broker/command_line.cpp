#include "app/broker/command_line.h"

#include <fstream>
#include <iostream>

namespace hsmb::app {
namespace {

int usage(int code) {
  (code == 0 ? std::cout : std::cerr)
      << "usage: hsm-broker --config FILE [--check]\n"
         "       hsm-broker --config FILE --enroll --so-pin-file [MEMBER=]PATH ...\n"
         "  --check        validate the configuration and exit (0 when valid)\n"
         "  --enroll       run the cluster-key ceremony on every member, then exit (docs/replication.md)\n"
         "  --so-pin-file  the SO PIN of MEMBER (or of every member) for --enroll; read only by --enroll\n";
  return code;
}

// "[MEMBER=]PATH": the file's first line is the SO PIN.
bool read_so_pin(const std::string& spec, so_pins& pins) {
  auto eq = spec.find('=');
  std::string member = eq == std::string::npos ? "" : spec.substr(0, eq);
  std::string path = eq == std::string::npos ? spec : spec.substr(eq + 1);
  std::ifstream in(path);
  secure_string pin;
  if (!in || !std::getline(in, pin) || pin.empty()) {
    std::cerr << "hsm-broker: --so-pin-file: cannot read a PIN from " << path << "\n";
    return false;
  }
  if (member.empty()) pins.for_all = std::move(pin);
  else pins.by_member[member] = std::move(pin);
  return true;
}

}  // namespace

std::expected<broker_command_line, int> parse_broker_command_line(int argc, char** argv) {
  broker_command_line out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) out.config_path = argv[++i];
    else if (a == "--check") out.check_only = true;
    else if (a == "--enroll") out.enroll = true;
    else if (a == "--so-pin-file" && i + 1 < argc) {
      if (!read_so_pin(argv[++i], out.pins)) return std::unexpected(2);
    }
    else if (a == "--help" || a == "-h") return std::unexpected(usage(0));
    else return std::unexpected(usage(2));
  }
  if (out.config_path.empty()) return std::unexpected(usage(2));
  return out;
}

}  // namespace hsmb::app
