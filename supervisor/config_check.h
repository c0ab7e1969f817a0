// The supervisor reads only `listen:` and `supervisor:` (common/service_settings.h); the broker
// validates the whole configuration, PIN files included, with `hsm-broker --check`.
#pragma once

#include "supervisor/generation.h"

namespace hsmb::supervisor {

// Runs `hsm-broker --config FILE --check` and waits (at most 30 s); true when it exits 0. Its
// messages go to the supervisor's stdout and stderr.
bool broker_accepts_config(const launch_spec& spec);

}  // namespace hsmb::supervisor
