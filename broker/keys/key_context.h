// What the parts of the key service share: the members, how keys are replicated, the catalog,
// and the lock that serialises key management (create, rotate, config, delete, catch-up).
#pragma once

#include <cstdint>

#include "common/coro/async_mutex.h"
#include "broker/config.h"
#include "broker/keys/catalog.h"
#include "broker/member_pool.h"

namespace boost::asio {
class io_context;
}

namespace hsmb {

struct key_context {
  key_context(boost::asio::io_context& io, member_pool& pool, replication_mode mode, std::uint32_t min_copies)
      : io(io), pool(pool), mode(mode), min_copies(min_copies), catalog(pool.size()) {}

  boost::asio::io_context& io;
  member_pool& pool;
  // With replication_mode::none the HSMs synchronise keys themselves (CloudHSM, Luna HA groups):
  // every member is assumed to hold every key, and the broker only routes.
  replication_mode mode;
  std::uint32_t min_copies;
  // The shortest auto_rotate_period a key may have (auto_rotate.min_period; Vault's is 1 h).
  std::int64_t min_auto_rotate_period = 3600;
  key_catalog catalog;
  async_mutex admin;

  bool replicates() const { return mode == replication_mode::broker && pool.size() > 1; }
};

}  // namespace hsmb
