// Whole reads and writes on a blocking file descriptor, retried across short transfers and
// EINTR. Only read() and write(): safe in a forked child before exec, too.
#pragma once

#include <cstddef>

namespace hsmb {

// false on an error, or when the other end closed first.
bool write_all(int fd, const void* data, std::size_t size);
bool read_exactly(int fd, void* data, std::size_t size);

}  // namespace hsmb
