// The serving hsm-broker: owns the io_context and the parts that run on it (members, keys,
// routes, HTTP server), starts them in order, and shuts them down in order on SIGTERM or SIGINT:
// stop accepting, drain the connections (bounded by drain_timeout), stop the members, exit.
#pragma once

#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "api/audit/audit_log.h"
#include "api/http/server.h"
#include "api/transit/routes.h"
#include "broker/config.h"
#include "broker/key_service.h"
#include "broker/member_pool.h"

namespace hsmb::app {

class broker_app {
 public:
  broker_app(config cfg, const std::string& worker_program);
  broker_app(const broker_app&) = delete;
  broker_app& operator=(const broker_app&) = delete;

  // Serves until a signal has drained it, then ends the process with _Exit(0) (see exit_stopped);
  // returns only when start-up fails, with the exit code (2: limits, 1: listening sockets).
  int run();

 private:
  void drain_on_signal();
  boost::asio::awaitable<void> serve();  // the audit key's first attempt, READY, then the key's retries
  boost::asio::awaitable<bool> fetch_audit_key();
  void reopen_audit_on_sighup();
  [[noreturn]] void exit_stopped();

  config cfg_;
  boost::asio::io_context io_{1};  // one thread runs it: Asio can skip its scheduler locking
  member_pool pool_;
  key_service keys_;
  std::optional<api::audit::audit_log> audit_;  // audit: configured
  api::routes routes_;
  std::optional<api::server> server_;  // made in run(), once the limits are known
  std::optional<boost::asio::signal_set> signals_;  // installed once serving, as before: see run()
  std::optional<boost::asio::signal_set> hangup_;   // SIGHUP reopens the audit log (logrotate)
  std::optional<boost::asio::steady_timer> drain_deadline_;
};

}  // namespace hsmb::app
