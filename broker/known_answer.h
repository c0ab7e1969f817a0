// The check a member passes before it takes traffic, at first start and every restart: sign a
// fresh digest with the member's canary key (created on first use) and verify it in the broker.
// It proves the worker is logged in to a token that really computes, not merely reachable.
#pragma once

#include <chrono>

#include <boost/asio/awaitable.hpp>

#include "broker/worker_channel.h"

namespace hsmb {

boost::asio::awaitable<hsm_result<void>> known_answer_check(worker_channel& worker, std::chrono::milliseconds call_timeout);

}  // namespace hsmb
