// CPU time of whole processes (user + system, every thread), read from /proc: how much each
// process on the request path spends per call, for the same window as the measured calls.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace hsmb::bench {

// A process whose CPU time is reported; several with one name are added up (a member's workers).
struct watched_process {
  std::string name;
  pid_t pid = 0;
};

// Seconds of CPU the process has used so far; a negative value if /proc cannot tell.
double cpu_seconds(pid_t pid);

// One reading per watched process, in order.
std::vector<double> read_cpu(const std::vector<watched_process>& watched);

}  // namespace hsmb::bench
