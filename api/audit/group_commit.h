// Group commit for the audit file: the lines of concurrent requests are written together. The
// first line of an event-loop turn posts a flush; lines added before it runs join it; the flush
// writes them with one write (file_sink::append_all), then resumes every writer with the
// outcome. A writer waits until its line is in the file; a line queued with enqueue() is not
// waited for, and its fate shows in failed_lines(). The file's lock, taken by
// the first flush, is released lease_time later (another broker generation writing the same file
// waits at most that long). Measured: the per-line flock, fstat and write were most of the audit
// trail's cost (bench/RESULTS.md).
#pragma once

#include <cstdint>
#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "api/audit/file_sink.h"

namespace hsmb {
class resume_slot;
}

namespace hsmb::api::audit {

class group_commit {
 public:
  static constexpr std::chrono::milliseconds lease_time{5};

  explicit group_commit(file_sink& sink) : sink_(sink) {}

  // Appends `body` as one sealed line, together with the other lines of this turn.
  boost::asio::awaitable<std::expected<void, std::string>> write(std::string body);
  // The same without waiting: the line goes out with this turn's flush, before any later line.
  void enqueue(std::string body, const boost::asio::any_io_executor& executor);
  std::uint64_t flushes() const { return flushes_; }  // writes to the file so far
  std::uint64_t written_lines() const { return written_lines_; }
  std::uint64_t failed_lines() const { return failed_lines_; }

 private:
  struct writer {
    resume_slot* slot;
    std::expected<void, std::string>* outcome;
  };
  void flush(const boost::asio::any_io_executor& executor);
  void post_flush(const boost::asio::any_io_executor& executor);
  void lease_lock(const boost::asio::any_io_executor& executor);

  file_sink& sink_;
  std::vector<std::string> lines_;
  std::vector<writer> writers_;
  std::vector<std::string> flushing_lines_;  // the batch being written; empty between flushes
  std::vector<writer> flushing_writers_;
  bool flush_posted_ = false;
  std::optional<boost::asio::steady_timer> lease_;  // releases the file's lock when it expires
  std::uint64_t flushes_ = 0;
  std::uint64_t written_lines_ = 0;
  std::uint64_t failed_lines_ = 0;
};

}  // namespace hsmb::api::audit
