#include "supervisor/config_check.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace hsmb::supervisor {
namespace {

constexpr auto check_timeout = std::chrono::seconds(30);

}  // namespace

bool broker_accepts_config(const launch_spec& spec) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl(spec.broker_program.c_str(), spec.broker_program.c_str(), "--config", spec.config_path.c_str(), "--check",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  if (pid < 0) return false;
  auto deadline = clock::now() + check_timeout;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return false;
    }
    ::usleep(10'000);  // a configuration check takes milliseconds; nothing else runs meanwhile
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace hsmb::supervisor
