// hsm-worker: runs one member's PKCS#11 backend on the socket the broker passes (`--fd N`).
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string_view>

#include "hsm_backends/pkcs11/pkcs11_backend.h"
#include "hsm_backends/worker/worker_server.h"

namespace {

int parse_fd(int argc, char** argv) {
  if (argc != 3 || std::string_view(argv[1]) != "--fd") return -1;
  char* end = nullptr;
  long fd = std::strtol(argv[2], &end, 10);
  return (*end == '\0' && fd > 2 && fd < 65536) ? static_cast<int>(fd) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a dead peer (broker or network HSM) must be an error, not a kill
  // The broker sets PDEATHSIG before exec and checks its own pid there; no getppid() == 1 test
  // here, because a broker running as PID 1 in a container is a legitimate parent.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int fd = parse_fd(argc, argv);
  if (fd < 0) {
    hsmb::worker_log("error", "usage: hsm-worker --fd N (N > 2)");
    return 2;
  }
  if (int null = open("/dev/null", O_RDONLY); null >= 0 && null != STDIN_FILENO) {
    dup2(null, STDIN_FILENO);  // nothing reads stdin; keep fd 0 occupied so it is never reused
    close(null);
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);  // vendor libraries that spawn helpers must not inherit the channel
  auto backend = hsmb::make_pkcs11_backend();
  hsmb::worker_server server(fd, *backend);
  return server.run();
}
