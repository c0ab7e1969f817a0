// When the broker reports READY (sd_notify) and starts accepting connections: the rule is in
// readiness.cpp, above announce_ready.
#pragma once

#include <chrono>

#include <boost/asio/awaitable.hpp>

#include "api/http/server.h"
#include "broker/key_service.h"
#include "broker/member_pool.h"

namespace hsmb::app {

boost::asio::awaitable<void> announce_ready(member_pool& pool, key_service& keys, api::server& server,
                                            std::chrono::milliseconds ready_timeout);

}  // namespace hsmb::app
