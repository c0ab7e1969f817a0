#include "api/audit/group_commit.h"

#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include "common/coro/resume_slot.h"

namespace hsmb::api::audit {

boost::asio::awaitable<std::expected<void, std::string>> group_commit::write(std::string body) {
  std::expected<void, std::string> outcome;
  resume_slot written;
  lines_.push_back(std::move(body));
  writers_.push_back({&written, &outcome});
  auto executor = co_await boost::asio::this_coro::executor;  // named: GCC 12 and temporaries in co_await
  post_flush(executor);
  co_await written.wait();
  co_return outcome;
}

void group_commit::enqueue(std::string body, const boost::asio::any_io_executor& executor) {
  lines_.push_back(std::move(body));
  post_flush(executor);
}

void group_commit::post_flush(const boost::asio::any_io_executor& executor) {
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(executor, [this, executor] { flush(executor); });
}

// Runs at the top of a posted handler, as resume_slot requires; a writer resumed here may add a
// line of its own, which goes to the next flush.
void group_commit::flush(const boost::asio::any_io_executor& executor) {
  flush_posted_ = false;
  flushing_lines_.swap(lines_);  // the vectors trade places and keep their capacity
  flushing_writers_.swap(writers_);
  auto outcome = sink_.append_all(flushing_lines_);
  ++flushes_;
  (outcome ? written_lines_ : failed_lines_) += flushing_lines_.size();
  flushing_lines_.clear();
  lease_lock(executor);
  for (auto& w : flushing_writers_) {
    *w.outcome = outcome;
    w.slot->fire();  // posts nothing that could flush before this loop ends
  }
  flushing_writers_.clear();
}

// The first flush that takes the lock starts the lease; its expiry releases the lock.
void group_commit::lease_lock(const boost::asio::any_io_executor& executor) {
  if (!sink_.locked() || lease_) return;
  lease_.emplace(executor, lease_time);
  lease_->async_wait([this](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted) return;  // the sink is being destroyed
    lease_.reset();
    sink_.unlock();
  });
}

}  // namespace hsmb::api::audit
