// hsm-supervisor: owns the listening sockets and runs hsm-broker generations on them (see
// supervisor/supervisor.h). Loads no PKCS#11 code and reads no PIN: of the configuration it
// reads `listen:` and `supervisor:`; hsm-broker --check validates the rest.
#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include <boost/asio/io_context.hpp>
#include <spdlog/spdlog.h>

#include "app/supervisor/command_line.h"
#include "app/supervisor/logging.h"
#include "common/program_path.h"
#include "common/service_settings.h"
#include "supervisor/config_check.h"
#include "supervisor/supervisor.h"

using namespace hsmb;

int main(int argc, char** argv) {
  auto config_path = app::parse_supervisor_command_line(argc, argv);
  if (!config_path) return config_path.error();
  app::setup_supervisor_logging();

  service_settings settings;
  try {
    settings = load_service_settings(*config_path);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 2;
  }
  supervisor::launch_spec spec{program_beside_self("hsm-broker"), std::filesystem::absolute(*config_path).string()};
  if (::access(spec.broker_program.c_str(), X_OK) != 0) {
    spdlog::critical("{} is missing: it must be installed next to hsm-supervisor", spec.broker_program);
    return 2;
  }
  // What the supervisor does not read (members, PINs, ...) is checked before the first
  // generation, as on SIGHUP: a configuration that cannot serve stops here, not in a restart loop.
  if (!supervisor::broker_accepts_config(spec)) {
    spdlog::critical("configuration rejected by hsm-broker --check");
    return 2;
  }
  std::vector<supervisor::listen_socket> sockets;
  try {
    sockets = supervisor::sockets_from_systemd();
    if (sockets.empty()) sockets = supervisor::open_sockets(settings);
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
  supervisor::supervisor s(io, spec, std::move(settings), std::move(sockets));
  s.run();
  io.run();
  spdlog::info("stopped");
  return 0;
}
