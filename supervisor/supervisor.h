// The supervisor's policy: keeps one broker generation serving on the shared sockets; replaces it
// every restart_interval (± jitter) by starting the next one and draining the old once the new is
// READY; restarts a crashed broker with backoff; kills one whose heartbeats stop; re-reads the
// configuration on SIGHUP; drains everything on SIGTERM. Reports to systemd with sd_notify.
#pragma once

#include <chrono>
#include <list>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/service_settings.h"
#include "supervisor/generation.h"

namespace hsmb::supervisor {

class supervisor {
 public:
  supervisor(boost::asio::io_context& io, launch_spec spec, service_settings settings, std::vector<listen_socket> sockets);

  // Starts the first generation and the supervision; io.run() returns once it has shut down.
  void run();

 private:
  void tick();
  void reap();
  void on_exit(generation& g, int status);
  void on_message(int number, std::string_view message);
  void on_ready(generation& g);
  void start_generation(std::string_view why);
  void drain(generation& g, std::string_view why);
  void check_deadlines(clock::time_point now);
  void reload();
  void shut_down(int sig);
  void ping_systemd(clock::time_point now);
  void report_status();
  void wait_for_signal();
  void schedule_tick();
  generation* serving();   // the ready generation (not draining), if any
  generation* starting();  // the generation on its way to READY, if any
  bool healthy(clock::time_point now);
  clock::duration jittered_interval();
  void fail_start_later(std::string_view what);

  boost::asio::io_context& io_;
  launch_spec spec_;
  service_settings settings_;
  std::vector<listen_socket> sockets_;
  std::list<generation> generations_;
  int next_number_ = 1;
  clock::time_point next_start_{};                  // earliest (re)start after a crash or failed start
  std::optional<clock::time_point> next_handoff_;   // the next periodic restart
  clock::time_point reload_requested_{};            // the last SIGHUP with a configuration that passed
  std::chrono::milliseconds backoff_{0};
  bool shutting_down_ = false;
  bool announced_ready_ = false;
  std::chrono::microseconds systemd_watchdog_{0};
  clock::time_point next_ping_{};
  boost::asio::steady_timer ticker_;
  boost::asio::signal_set signals_;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace hsmb::supervisor
