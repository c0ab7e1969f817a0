#include "supervisor/generation.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace hsmb::supervisor {
namespace {

// In the child, between fork and exec: the supervisor is single-threaded, so setenv is safe here.
[[noreturn]] void exec_broker(const launch_spec& spec, const std::vector<listen_socket>& sockets,
                              const std::string& notify_address, int number, std::chrono::milliseconds heartbeat,
                              bool handoff, pid_t parent) {
  ::setpgid(0, 0);  // a terminal's Ctrl-C reaches the supervisor only, which then drains us
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a supervisor that dies takes its brokers along, drained
  if (::getppid() != parent) ::_exit(1);
  give_listen_fds(sockets);
  ::setenv("NOTIFY_SOCKET", notify_address.c_str(), 1);
  ::setenv("WATCHDOG_USEC", std::to_string(std::chrono::microseconds(heartbeat).count()).c_str(), 1);
  ::unsetenv("WATCHDOG_PID");
  ::setenv("HSMB_GENERATION", std::to_string(number).c_str(), 1);
  if (handoff) ::setenv("HSMB_HANDOFF", "1", 1);
  else ::unsetenv("HSMB_HANDOFF");
  ::execl(spec.broker_program.c_str(), spec.broker_program.c_str(), "--config", spec.config_path.c_str(),
          static_cast<char*>(nullptr));
  ::_exit(127);
}

}  // namespace

void generation::signal(int sig) const {
  if (pid > 0 && state != phase::exited) ::kill(pid, sig);
}

pid_t spawn_broker(const launch_spec& spec, const std::vector<listen_socket>& sockets, const std::string& notify_address,
                   int number, std::chrono::milliseconds heartbeat, bool handoff) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) exec_broker(spec, sockets, notify_address, number, heartbeat, handoff, parent);
  return pid;
}

}  // namespace hsmb::supervisor
