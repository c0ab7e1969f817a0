// Group commit for the audit file: the lines of concurrent requests are written together. The
// first line of an event-loop turn posts a flush; lines added before it runs join it; the flush
// writes them with one lock and one write (file_sink::append_all), then resumes every writer
// with the outcome. Each request still waits until its own line is in the file. Measured: the
// per-line flock, fstat and write were most of the audit trail's cost (bench/RESULTS.md).
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "api/audit/file_sink.h"

namespace hsmb {
class resume_slot;
}

namespace hsmb::api::audit {

class group_commit {
 public:
  explicit group_commit(file_sink& sink) : sink_(sink) {}

  // Appends `body` as one sealed line, together with the other lines of this turn.
  boost::asio::awaitable<std::expected<void, std::string>> write(std::string body);
  std::uint64_t flushes() const { return flushes_; }  // writes to the file so far

 private:
  struct writer {
    resume_slot* slot;
    std::expected<void, std::string>* outcome;
  };
  void flush();

  file_sink& sink_;
  std::vector<std::string> lines_;
  std::vector<writer> writers_;
  bool flush_posted_ = false;
  std::uint64_t flushes_ = 0;
};

}  // namespace hsmb::api::audit
