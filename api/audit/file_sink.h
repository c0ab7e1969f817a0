// The audit file: appends sealed lines (chain.h). Each append holds flock(LOCK_EX) and continues
// the chain from the file's last line, so two broker generations writing one file during a
// hand-off still give one chain. reopen() (SIGHUP, after logrotate) opens the path again; a file
// that cannot be opened is tried again at the next append.
#pragma once

#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>

namespace hsmb::api::audit {

class file_sink {
 public:
  explicit file_sink(std::string path);
  ~file_sink();
  file_sink(const file_sink&) = delete;
  file_sink& operator=(const file_sink&) = delete;

  // Appends `body` (a JSON object's text, no chain field) as one sealed line; the error says why not.
  std::expected<void, std::string> append(std::string_view body);
  // Appends each of `bodies` in order with one lock and one write: all of them, or none.
  std::expected<void, std::string> append_all(std::span<const std::string> bodies);
  void reopen();
  const std::string& path() const { return path_; }

 private:
  std::expected<void, std::string> ensure_open();
  std::string previous_chain(std::uint64_t size);  // the last line's chain, read from the file's end

  std::string path_;
  int fd_ = -1;
  std::uint64_t end_ = 0;  // the file's size after our last append: unchanged means `chain_` is its last
  std::string chain_;
};

}  // namespace hsmb::api::audit
