// File descriptors: connections must never take the ones a worker restart or a probe needs (with
// the limit reached, `socketpair` fails and a member stays down). Descriptors are reserved for the
// members first; the listeners' connection caps must fit in the rest.
#pragma once

#include <cstddef>
#include <string>

#include "broker/config.h"

namespace hsmb {

// Workers (a socketpair end each, a second while one is replaced or recycled, a pipe while one
// starts), listeners, the notify socket, logs, a margin.
std::size_t reserved_descriptors(std::size_t members);
// RLIMIT_NOFILE's soft limit, first raised to the hard limit where that is allowed.
std::size_t descriptor_limit();
// Connections all listeners may hold together within `limit`.
std::size_t connection_budget(const config& cfg, std::size_t limit);
// Empty when the configured caps fit in `limit`; else what to change.
std::string check_descriptor_budget(const config& cfg, std::size_t limit);

}  // namespace hsmb
