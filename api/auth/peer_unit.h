// The systemd unit a Unix peer runs in, from /proc/<pid>/cgroup, for `unit:` rules.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace hsmb::api {

// The system unit of a cgroup file's text: the first "*.service" of the unified ("0::") or, when
// the unified path is the root (systemd in legacy mode), the name=systemd hierarchy's path under
// /system.slice/. Empty for user sessions (a user's own manager names its units freely) and for
// processes in no service.
std::string unit_from_cgroup(std::string_view cgroup_text);

// The unit of process `pid` if it still runs as `uid`; empty when unknown. Reads through a pidfd
// and a /proc/<pid> directory fd, and checks after reading that the pidfd's process is alive:
// the text then belongs to that very process (see the .cpp on pid reuse).
std::string peer_unit(pid_t pid, uid_t uid);

}  // namespace hsmb::api
