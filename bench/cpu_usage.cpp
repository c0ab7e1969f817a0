// CPU time from /proc/PID/stat; see cpu_usage.h.
#include "bench/cpu_usage.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace hsmb::bench {

double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  // The command name, field 2, is in parentheses and may hold spaces: count from after it.
  auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(line.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field) fields >> skip;
  unsigned long long utime = 0, stime = 0;
  if (!(fields >> utime >> stime)) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::vector<double> read_cpu(const std::vector<watched_process>& watched) {
  std::vector<double> out;
  for (auto& w : watched) out.push_back(cpu_seconds(w.pid));
  return out;
}

}  // namespace hsmb::bench
