#include "app/broker/broker_app.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

#include "app/broker/listeners.h"
#include "app/broker/readiness.h"
#include "app/broker/server_limits.h"
#include "broker/service_manager.h"
#include "common/sd_notify.h"

namespace hsmb::app {
namespace asio = boost::asio;

broker_app::broker_app(config cfg, const std::string& worker_program)
    : cfg_(std::move(cfg)),
      pool_(io_, cfg_, worker_program),
      keys_(io_, pool_, cfg_.replication, cfg_.min_copies),
      routes_(keys_, pool_, cfg_.max_batch_items) {
  keys_.attach();
}

int broker_app::run() {
  api::server_limits limits;
  try {
    limits = server_limits_of(cfg_);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 2;
  }
  server_.emplace(io_, [this](const api::request& r) { return routes_.handle(r); }, limits);
  server_->hold_accepting();  // until READY: see announce_ready
  try {
    open_listeners(*server_, cfg_);
  } catch (const config_error& e) {  // a bad TLS file: as a bad configuration
    spdlog::critical("{}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  pool_.run();
  asio::co_spawn(io_, announce_ready(pool_, keys_, *server_, cfg_.ready_timeout), asio::detached);
  start_heartbeat(io_, pool_);
  drain_on_signal();
  io_.run();
  exit_stopped();
}

// Stop accepting and drain; io_.run() returns once the connections are gone or at drain_timeout.
void broker_app::drain_on_signal() {
  signals_.emplace(io_, SIGTERM, SIGINT);
  drain_deadline_.emplace(io_);
  signals_->async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: draining connections", sig);
    sd_notify("STOPPING=1");
    server_->drain([this] { io_.stop(); });
    drain_deadline_->expires_after(cfg_.drain_timeout);
    drain_deadline_->async_wait([this](const boost::system::error_code& e) {
      if (!e) io_.stop();
    });
  });
}

void broker_app::exit_stopped() {
  pool_.stop();
  spdlog::info("stopped");
  spdlog::shutdown();
  // Exit without destroying the io_context: coroutines still suspended at a drain deadline would
  // otherwise run their destructors against objects already gone. Workers are already killed.
  std::fflush(nullptr);
  std::_Exit(0);
}

}  // namespace hsmb::app
