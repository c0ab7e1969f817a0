// The latency floor of the broker's design: a chain of processes that only pass a message on,
// over Unix socketpairs. With two hops (client -> relay 1 -> relay 2, which echoes, and back) it
// crosses the same process boundaries as client -> broker -> worker -> broker -> client, with no
// work at all: what the process hops alone cost on this machine.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "bench/closed_loop.h"

namespace hsmb::bench {

class relay_chain {
 public:
  // Forks `hops` relay processes; call before starting threads.
  static std::expected<std::unique_ptr<relay_chain>, std::string> start(unsigned hops);
  ~relay_chain();  // closes the chain: each relay sees end of file and exits; all are reaped
  relay_chain(const relay_chain&) = delete;
  relay_chain& operator=(const relay_chain&) = delete;

  // Sends `size` bytes through the chain and waits for them to come back. One caller at a time.
  call_fn make_call(std::size_t size);
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  relay_chain() = default;
  int fd_ = -1;
  std::vector<pid_t> pids_;
};

}  // namespace hsmb::bench
