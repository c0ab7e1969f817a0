// hsm-supervisor: owns the listening sockets and runs hsm-broker generations on them (see
// supervisor.h). Loads no PKCS#11 code and keeps no PIN.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include <boost/asio/io_context.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/program_path.h"
#include "supervisor/supervisor.h"

using namespace hsmb;

namespace {

int usage(int code) {
  (code == 0 ? std::cout : std::cerr) << "usage: hsm-supervisor --config FILE\n"
                                         "  runs hsm-broker (found next to this program) on sockets it owns; see README\n";
  return code;
}

std::string broker_program() { return program_beside_self("hsm-broker"); }

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) config_path = argv[++i];
    else if (a == "--help" || a == "-h") return usage(0);
    else return usage(2);
  }
  if (config_path.empty()) return usage(2);
  auto logger = spdlog::stderr_color_mt("hsm-supervisor");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ supervisor: %v");
  spdlog::set_default_logger(logger);

  config cfg;
  try {
    cfg = load_config(config_path);
  } catch (const std::exception& e) {
    std::cerr << "hsm-supervisor: " << e.what() << "\n";
    return 2;
  }
  for (auto& m : cfg.members) secure_wipe(m.pin.data(), m.pin.size());  // read by the broker, not here
  supervisor::launch_spec spec{broker_program(), std::filesystem::absolute(config_path).string()};
  if (::access(spec.broker_program.c_str(), X_OK) != 0) {
    std::cerr << "hsm-supervisor: " << spec.broker_program << " is missing: it must be installed next to hsm-supervisor\n";
    return 2;
  }
  std::vector<supervisor::listen_socket> sockets;
  try {
    sockets = supervisor::sockets_from_systemd();
    if (sockets.empty()) sockets = supervisor::open_sockets(cfg);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  if (sockets.empty()) {
    spdlog::critical("nothing to listen on: configure listen: or use socket activation");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context io;
  supervisor::supervisor s(io, spec, std::move(cfg), std::move(sockets));
  s.run();
  io.run();
  spdlog::info("stopped");
  return 0;
}
