// Where the audit key comes from: HMAC-SHA256 under version 1 of the reserved Transit key
// `hsmb-audit` (an HMAC key, created once like any key and replicated to every member) of a
// fixed string. The same 32 bytes on every member and in every generation; never on disk.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "broker/error.h"
#include "broker/key_service.h"
#include "common/bytes.h"

namespace hsmb::app {

// One attempt: reads (or creates) the key and asks a member for the HMAC.
boost::asio::awaitable<broker_result<secure_bytes>> derive_audit_key(key_service& keys);

}  // namespace hsmb::app
