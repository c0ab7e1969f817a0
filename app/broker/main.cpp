// hsm-broker: serves the Transit API on the configured sockets, backed by one worker per HSM.
// Also `--check` (validate the configuration) and `--enroll` (the cluster-key ceremony).
#include <signal.h>

#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

#include "app/broker/broker_app.h"
#include "app/broker/command_line.h"
#include "app/broker/config_check.h"
#include "app/broker/logging.h"
#include "broker/config.h"
#include "broker/enrollment.h"
#include "common/program_path.h"

using namespace hsmb;

int main(int argc, char** argv) {
  auto args = app::parse_broker_command_line(argc, argv);
  if (!args) return args.error();
  app::setup_broker_logging();  // before the configuration: its errors and --check's verdict are log lines too
  config cfg;
  try {
    cfg = load_config(args->config_path);
  } catch (const config_error& e) {
    spdlog::critical("{}", e.what());
    return 2;
  }
  const std::string worker_program = program_beside_self("hsm-worker");
  if (args->check_only) return app::check_config(cfg, worker_program);
  ::signal(SIGPIPE, SIG_IGN);
  if (args->enroll) return run_enrollment(cfg, worker_program, args->pins);
  // A PIN read from the environment must not reach other members' workers (they inherit it).
  for (auto& m : cfg.members)
    if (m.pin_source.starts_with("env ")) ::unsetenv(m.pin_source.substr(4).c_str());
  app::broker_app broker(std::move(cfg), worker_program);
  return broker.run();
}
