#include "kms_plugin/broker_pool.h"

#include <algorithm>
#include <exception>
#include <thread>

namespace hsmb::kms {

broker_pool::broker_pool(client::endpoint broker, secure_string token, std::size_t max_idle,
                         std::chrono::milliseconds attempt_timeout)
    : broker_(std::move(broker)), token_(std::move(token)), max_idle_(max_idle), attempt_timeout_(attempt_timeout) {}

std::unique_ptr<client::broker_client> broker_pool::acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  return std::make_unique<client::broker_client>(broker_, attempt_timeout_);
}

void broker_pool::release(std::unique_ptr<client::broker_client> c) {
  std::lock_guard lock(mu_);
  if (idle_.size() < max_idle_) {
    idle_.push_back(std::move(c));
    return;
  }
  opened_ += c->connections_opened();
}

std::size_t broker_pool::connections_opened() const {
  std::lock_guard lock(mu_);
  std::size_t n = opened_;
  for (auto& c : idle_) n += c->connections_opened();
  return n;
}

result<client::reply> broker_pool::call(std::string_view method, std::string_view target, std::string_view body,
                                        clock::time_point deadline, on_unavailable policy) {
  std::string last = "no attempt before the deadline";
  auto backoff = std::chrono::milliseconds(10);
  for (bool first = true; first || clock::now() < deadline; first = false) {
    auto c = acquire();
    try {
      auto r = c->request(method, target, body, token_);
      bool retry = r.status == 429 || (r.status == 503 && policy == on_unavailable::retry);
      if (!retry) {
        release(std::move(c));
        return r;
      }
      last = "broker answered " + std::to_string(r.status) + ": " + r.body;
      release(std::move(c));
    } catch (const std::exception& e) {  // the client reports transport failures by exception
      last = e.what();
      std::lock_guard lock(mu_);
      opened_ += c->connections_opened();  // dropped: a restarted broker needs a fresh connection
    }
    // Back off, but never past the deadline: the broker is restarting or failing over.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left <= std::chrono::milliseconds::zero()) break;
    std::this_thread::sleep_for(std::min(backoff, left));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(200));
  }
  return std::unexpected(failure{failure_kind::unavailable, last});
}

}  // namespace hsmb::kms
