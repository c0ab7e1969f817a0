// hsm-broker: serves the Transit API on the configured sockets, backed by one worker per HSM.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "api/http/server.h"
#include "api/transit/routes.h"
#include "broker/config.h"
#include "broker/descriptor_budget.h"
#include "broker/enrollment.h"
#include "broker/key_service.h"
#include "broker/member_pool.h"
#include "broker/service_manager.h"
#include "common/program_path.h"
#include "common/sd_notify.h"

namespace asio = boost::asio;
using namespace hsmb;

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

std::string worker_program() { return program_beside_self("hsm-worker"); }

void setup_logging() {
  auto logger = spdlog::stderr_color_mt("hsm-broker");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  if (const char* level = std::getenv("HSMB_LOG_LEVEL")) spdlog::set_level(spdlog::level::from_str(level));
}

int check(const config& cfg) {
  for (std::size_t i = 0; i < cfg.members.size(); ++i)
    if (::access(cfg.members[i].module.c_str(), R_OK) != 0) {
      std::cerr << "hsm-broker: members[" << i << "].module: cannot read " << cfg.members[i].module << "\n";
      return 2;
    }
  if (::access(worker_program().c_str(), X_OK) != 0) {
    std::cerr << "hsm-broker: " << worker_program() << " is missing: it must be installed next to hsm-broker\n";
    return 2;
  }
  if (auto budget = check_descriptor_budget(cfg, descriptor_limit()); !budget.empty()) {
    std::cerr << "hsm-broker: " << budget << "\n";
    return 2;
  }
  std::cout << "configuration OK: " << cfg.members.size() << " member(s)\n";
  return 0;
}

api::server_limits server_limits_of(const config& cfg) {
  api::server_limits limits;
  limits.max_body = cfg.max_request_bytes;
  auto fds = descriptor_limit();
  if (auto budget = check_descriptor_budget(cfg, fds); !budget.empty()) spdlog::warn("{}; connections beyond that are refused", budget);
  limits.max_connections = connection_budget(cfg, fds);
  if (limits.max_connections == 0)
    throw std::runtime_error("RLIMIT_NOFILE (" + std::to_string(fds) + ") leaves no descriptor for connections; raise it");
  auto listener = [](const connection_limits& l) { return api::listener_limits{l.max_connections, l.max_connections_per_peer}; };
  if (cfg.unix_listener) limits.unix_listener = listener(cfg.unix_listener->limits);
  if (cfg.http_listener) {
    limits.tcp_listener = listener(cfg.http_listener->limits);
    limits.allowed_hosts = cfg.http_listener->allowed_hosts;
    limits.allowed_origins = cfg.http_listener->allowed_origins;
  }
  return limits;
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

// READY (and accepting connections) once every member serves or was found down by a real attempt:
// a broker that took traffic before reading a member's records could not tell which keys exist.
// In a hand-off (HSMB_HANDOFF=1: another generation serves meanwhile) at least one member must
// serve too, and there is no other bound: the supervisor kills a generation that is not READY by
// ready_timeout and the old one stays.
// Otherwise READY comes at the latest after half of ready_timeout, with the members that are
// ready by then; requests for keys on the others get 503 until they are read, never 404.
asio::awaitable<void> announce_ready(member_pool& pool, key_service& keys, api::server& server,
                                     std::chrono::milliseconds ready_timeout) {
  const char* handoff = std::getenv("HSMB_HANDOFF");
  bool in_handoff = handoff && std::string_view(handoff) == "1";
  auto bound = in_handoff ? std::chrono::milliseconds(std::chrono::hours(24 * 365)) : ready_timeout / 2;
  // A hand-off never moves traffic to a generation that serves nothing: the old one may serve.
  // In a hand-off a member counts as down only after two failed attempts: one may be a start
  // storm's transient error, and the old generation may be serving that member meanwhile.
  auto ready = [&] { return in_handoff ? keys.ready(2) && pool.serving_count() > 0 : keys.ready(); };
  co_await pool.wait_until(ready, std::chrono::steady_clock::now() + bound);
  if (!keys.ready()) spdlog::warn("not every member is ready after {} ms; serving with those that are", bound.count());
  spdlog::info("ready: {} of {} members serving", pool.serving_count(), pool.size());
  server.start_accepting();
  sd_notify("READY=1\n" + status_line(pool));
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false, enroll = false;
  so_pins pins;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) config_path = argv[++i];
    else if (a == "--check") check_only = true;
    else if (a == "--enroll") enroll = true;
    else if (a == "--so-pin-file" && i + 1 < argc) {
      if (!read_so_pin(argv[++i], pins)) return 2;
    }
    else if (a == "--help" || a == "-h") return usage(0);
    else return usage(2);
  }
  if (config_path.empty()) return usage(2);

  config cfg;
  try {
    cfg = load_config(config_path);
  } catch (const config_error& e) {
    std::cerr << "hsm-broker: " << e.what() << "\n";
    return 2;
  }
  if (check_only) return check(cfg);
  ::signal(SIGPIPE, SIG_IGN);
  setup_logging();
  if (enroll) return run_enrollment(cfg, worker_program(), pins);
  // A PIN read from the environment must not reach other members' workers (they inherit it).
  for (auto& m : cfg.members)
    if (m.pin_source.starts_with("env ")) ::unsetenv(m.pin_source.substr(4).c_str());

  asio::io_context io(1);  // one thread runs it: Asio can skip its scheduler locking
  member_pool pool(io, cfg, worker_program());
  key_service keys(io, pool, cfg.replication, cfg.min_copies);
  keys.attach();
  api::routes routes(keys, pool, cfg.max_batch_items);
  api::server_limits limits;
  try {
    limits = server_limits_of(cfg);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 2;
  }
  api::server server(io, [&routes](const api::request& r) { return routes.handle(r); }, limits);
  server.hold_accepting();  // until READY: see announce_ready
  try {
    // Sockets from hsm-supervisor or systemd take the place of the configured ones.
    auto inherited = inherited_listeners();
    for (int fd : inherited) server.adopt_listener(fd);
    if (inherited.empty() && cfg.unix_listener)
      server.listen_unix({cfg.unix_listener->path, cfg.unix_listener->mode, cfg.unix_listener->group});
    if (inherited.empty() && cfg.http_listener) server.listen_tcp(cfg.http_listener->address);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  pool.run();
  asio::co_spawn(io, announce_ready(pool, keys, server, cfg.ready_timeout), asio::detached);
  start_heartbeat(io, pool);

  asio::signal_set signals(io, SIGTERM, SIGINT);
  asio::steady_timer drain_deadline(io);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: draining connections", sig);
    sd_notify("STOPPING=1");
    server.drain([&] { io.stop(); });
    drain_deadline.expires_after(cfg.drain_timeout);
    drain_deadline.async_wait([&](const boost::system::error_code& e) {
      if (!e) io.stop();
    });
  });
  io.run();
  pool.stop();
  spdlog::info("stopped");
  spdlog::shutdown();
  // Exit without destroying the io_context: coroutines still suspended at a drain deadline would
  // otherwise run their destructors against objects already gone. Workers are already killed.
  std::fflush(nullptr);
  std::_Exit(0);
}
