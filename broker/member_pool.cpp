#include "broker/member_pool.h"

#include "hsm_backends/pkcs11/p11.h"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;
using clock = std::chrono::steady_clock;

member_pool::member_pool(asio::io_context& io, const config& cfg, const std::string& worker_program)
    : request_timeout_(cfg.request_timeout) {
  for (std::size_t i = 0; i < cfg.members.size(); ++i)
    members_.push_back(std::make_unique<member>(io, i, cfg.members[i], worker_program,
                                                member_timing{cfg.call_timeout, cfg.probe_interval}));
}

void member_pool::run() {
  for (auto& m : members_) m->run();
}

void member_pool::stop() {
  for (auto& m : members_) m->stop();
}

std::size_t member_pool::serving_count() const {
  return static_cast<std::size_t>(
      std::count_if(members_.begin(), members_.end(), [](auto& m) { return m->state() == member_state::serving; }));
}

std::vector<member_snapshot> member_pool::snapshots() const {
  std::vector<member_snapshot> out;
  for (auto& m : members_) out.push_back(m->snapshot());
  return out;
}

std::vector<member*> member_pool::routing_order(const std::function<bool(const member&)>& eligible) const {
  std::vector<member*> order;
  for (auto& m : members_)
    if (eligible(*m)) order.push_back(m.get());
  // Serving members first, the least busy first among them.
  std::stable_sort(order.begin(), order.end(), [](member* a, member* b) {
    bool sa = a->state() == member_state::serving, sb = b->state() == member_state::serving;
    if (sa != sb) return sa;
    return a->snapshot().in_flight < b->snapshot().in_flight;
  });
  return order;
}

awaitable<api_result<bytes>> member_pool::execute(wire::op op, byte_view payload,
                                                  const std::function<bool(const member&)>& eligible) {
  auto deadline = clock::now() + request_timeout_;
  auto order = routing_order(eligible);
  if (order.empty()) co_return fail(503, "no member holds this key");
  std::string failures;
  for (member* m : order) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0) break;
    auto result = co_await m->call(op, payload, left);
    if (result) co_return std::move(*result);
    if (!try_elsewhere(result.error())) co_return std::unexpected(caller_error(result.error()));
    failures += (failures.empty() ? "" : "; ") + m->name() + ": " + result.error().message + " (" +
                ckr_name(result.error().ckr) + ")";
  }
  co_return fail(503, "no member could serve the request: " + failures);
}

awaitable<void> member_pool::wait_any_started(std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  for (auto& m : members_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0) break;
    if (co_await m->wait_serving(left)) co_return;
  }
}

bool try_elsewhere(const hsm_error& e) {
  return is_device_error(e.ckr) || e.ckr == ckr_object_not_found || e.ckr == CKR_KEY_HANDLE_INVALID;
}

api_error caller_error(const hsm_error& e) {
  switch (e.ckr) {
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
      return {400, "cipher: message authentication failed"};
    case CKR_DATA_INVALID:
    case CKR_DATA_LEN_RANGE:
    case CKR_ARGUMENTS_BAD:
      return {400, "invalid input for this key: " + e.message};
    case CKR_FUNCTION_CANCELED:  // the worker's queue is full
      return {429, "member is overloaded: " + e.message};
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_FUNCTION_NOT_SUPPORTED:
      return {400, "the HSM does not support this operation: " + e.message + " (" + ckr_name(e.ckr) + ")"};
    default:
      return {500, "HSM rejected the operation: " + e.message + " (" + ckr_name(e.ckr) + ")"};
  }
}

}  // namespace hsmb
