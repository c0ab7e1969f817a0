// The drift report (GET /v1/broker/keys/sync): every key version on every member, with
// fingerprints, so an operator sees missing and mismatched copies.
#pragma once

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/keys/copy_checks.h"

namespace hsmb {

struct version_sync {
  std::uint32_t version = 0;
  std::string status;  // "ok", "missing" (some serving member lacks it), "mismatch", "unchecked"
  std::vector<copy_state> copies;
};

struct key_sync {
  std::string name;
  key_type type;
  std::vector<version_sync> versions;
};

boost::asio::awaitable<std::vector<key_sync>> report_drift(key_context& ctx, copy_checks& checks);

}  // namespace hsmb
