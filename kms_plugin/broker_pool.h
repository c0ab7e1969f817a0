// Persistent keep-alive connections to the broker's Unix socket, shared by the gRPC threads: a
// request takes an idle connection (or opens one), and one that failed is dropped, so a broker
// restart costs one reconnect. Transport failures, 429 and (when asked) 503 are retried with
// backoff until the request's deadline.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "api/client/broker_client.h"
#include "common/bytes.h"
#include "kms_plugin/failure.h"

namespace hsmb::kms {

using clock = std::chrono::steady_clock;

class broker_pool {
 public:
  // attempt_timeout bounds one exchange with the broker (its own request timeout is 5 s).
  broker_pool(client::endpoint broker, secure_string token, std::size_t max_idle = 32,
              std::chrono::milliseconds attempt_timeout = std::chrono::seconds(5));

  // 503 means no member can serve: worth retrying while HSMs fail over, not for a health probe.
  enum class on_unavailable { retry, answer };
  // The broker's reply (any HTTP status but 429 / retried 503), or unavailable when no attempt
  // got an answer before the deadline.
  result<client::reply> call(std::string_view method, std::string_view target, std::string_view body,
                             clock::time_point deadline, on_unavailable policy = on_unavailable::retry);

  std::size_t connections_opened() const;

 private:
  std::unique_ptr<client::broker_client> acquire();
  void release(std::unique_ptr<client::broker_client> c);

  client::endpoint broker_;
  secure_string token_;
  std::size_t max_idle_;
  std::chrono::milliseconds attempt_timeout_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<client::broker_client>> idle_;
  std::size_t opened_ = 0;  // by connections already dropped; idle ones count their own
};

}  // namespace hsmb::kms
