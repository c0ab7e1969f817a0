// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET ("READY=1", "STATUS=...").
// Used the same way under systemd and under hsm-supervisor; a no-op when the variable is unset.
#pragma once

#include <string_view>

namespace hsmb {

bool sd_notify(std::string_view message);

}  // namespace hsmb
