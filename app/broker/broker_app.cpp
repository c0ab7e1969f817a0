#include "app/broker/broker_app.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "app/broker/audit_key_source.h"
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
      routes_(keys_, pool_, cfg_.max_batch_items, api::gate(cfg_.auth)) {
  keys_.attach();
  keys_.set_min_auto_rotate_period(std::chrono::duration_cast<std::chrono::seconds>(cfg_.auto_rotate_min_period).count());
  if (!cfg_.audit.file.empty()) {
    audit_.emplace(cfg_.audit.file, cfg_.audit.fail_closed);
    routes_.set_audit(&*audit_);
  }
}

int broker_app::run() {
  if (!cfg_.auth)
    spdlog::warn("no auth section: every caller that can reach a listener may do everything (README \"Callers and policies\")");
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
  asio::co_spawn(io_, serve(), asio::detached);
  start_heartbeat(io_, pool_);
  drain_on_signal();
  reopen_audit_on_sighup();
  io_.run();
  exit_stopped();
}

// With audit and fail_closed, a broker without the audit key could only answer 503: its first
// attempt comes before READY (bounded as READY is), and it is tried again until a member serves it.
asio::awaitable<void> broker_app::serve() {
  bool derived = false;
  if (audit_) {
    auto deadline = std::chrono::steady_clock::now() + cfg_.ready_timeout / 2;
    co_await pool_.wait_until([this] { return keys_.ready() && pool_.serving_count() > 0; }, deadline);
    derived = co_await fetch_audit_key();
  }
  co_await announce_ready(pool_, keys_, *server_, cfg_.ready_timeout);
  asio::co_spawn(io_, keys_.auto_rotate(cfg_.auto_rotate_check), asio::detached);
  asio::steady_timer retry(io_);
  while (audit_ && !derived) {
    retry.expires_after(cfg_.probe_interval);
    co_await retry.async_wait(asio::use_awaitable);
    derived = co_await fetch_audit_key();
  }
}

asio::awaitable<bool> broker_app::fetch_audit_key() {
  auto key = co_await derive_audit_key(keys_);
  if (!key) {
    spdlog::warn("audit: the audit key cannot be derived yet: {}{}", key.error().message,
                 cfg_.audit.fail_closed ? " (requests get 503 until it is)" : " (secrets are written as hmac-sha256:unavailable)");
    co_return false;
  }
  audit_->key().set(std::move(*key));
  spdlog::info("audit: key derived in an HSM; writing {}", cfg_.audit.file);
  co_return true;
}

// Standalone, SIGHUP reopens the audit log (logrotate's postrotate). Under hsm-supervisor SIGHUP
// goes to the supervisor, whose new generation opens the path afresh.
void broker_app::reopen_audit_on_sighup() {
  if (!audit_) return;
  if (!hangup_) hangup_.emplace(io_, SIGHUP);
  hangup_->async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    spdlog::info("SIGHUP: reopening the audit log {}", cfg_.audit.file);
    audit_->reopen();
    reopen_audit_on_sighup();
  });
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
