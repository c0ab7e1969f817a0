// One broker generation: an hsm-broker process started on the shared listening sockets, with a
// notify socket of its own, and what the supervisor knows about it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "supervisor/listen_sockets.h"
#include "supervisor/notify_receiver.h"

namespace hsmb::supervisor {

using clock = std::chrono::steady_clock;

struct launch_spec {
  std::string broker_program;  // hsm-broker, next to hsm-supervisor
  std::string config_path;
};

struct generation {
  enum class phase { starting, ready, draining, exited };

  int number = 0;
  pid_t pid = -1;
  phase state = phase::starting;
  clock::time_point started{}, ready_at{}, last_heartbeat{}, drain_started{};
  std::string status;  // the broker's last STATUS=
  std::string reason;  // why it was started: "start-up", "periodic restart", "configuration reloaded (SIGHUP)"
  std::unique_ptr<notify_receiver> notify;

  bool alive() const { return state != phase::exited; }
  void signal(int sig) const;
};

// Forks and execs the broker with `sockets` as fds 3.. (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID),
// NOTIFY_SOCKET = `notify_address`, WATCHDOG_USEC = `heartbeat`, HSMB_GENERATION, and HSMB_HANDOFF=1
// when another generation serves meanwhile (the broker then reports READY only once it can serve
// every member's keys). Returns the pid, or -1.
pid_t spawn_broker(const launch_spec& spec, const std::vector<listen_socket>& sockets, const std::string& notify_address,
                   int number, std::chrono::milliseconds heartbeat, bool handoff);

}  // namespace hsmb::supervisor
