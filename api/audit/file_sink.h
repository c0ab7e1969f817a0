// The audit file: appends sealed lines (chain.h). Appends hold flock(LOCK_EX) and continue the
// chain from the file's last line, so two broker generations writing one file during a hand-off
// still give one chain. The lock is kept across appends until unlock() (group_commit calls it a
// few milliseconds after it was taken): a lock and an unlock per append were a quarter of the
// audit trail's cost, and another writer waits at most that long. reopen() (SIGHUP, after
// logrotate) opens the path again; a file that cannot be opened is tried again at the next append.
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

  // Appends `body` (a JSON object's text, no chain field) as one sealed line and releases the
  // lock; the error says why not.
  std::expected<void, std::string> append(std::string_view body);
  // Appends each of `bodies` in order with one write, all of them or none, keeping the lock.
  std::expected<void, std::string> append_all(std::span<const std::string> bodies);
  void reopen();
  // Releases the lock the last append kept (if any): another process may write now.
  void unlock();
  bool locked() const { return locked_; }
  const std::string& path() const { return path_; }

 private:
  std::expected<void, std::string> ensure_open();
  std::string previous_chain(std::uint64_t size);  // the last line's chain, read from the file's end

  std::string path_;
  int fd_ = -1;
  std::uint64_t end_ = 0;  // the file's size after our last append: unchanged means `chain_` is its last
  std::string chain_;
  std::string pending_chain_, batch_;  // append_all's scratch, kept for their capacity
  bool locked_ = false;
};

}  // namespace hsmb::api::audit
