#include "api/audit/file_sink.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include "api/audit/chain.h"
#include "common/fd_io.h"

namespace hsmb::api::audit {
namespace {

std::string why(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

}  // namespace

file_sink::file_sink(std::string path) : path_(std::move(path)) { (void)ensure_open(); }

file_sink::~file_sink() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock with it
}

void file_sink::reopen() {
  unlock();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  (void)ensure_open();
}

void file_sink::unlock() {
  if (locked_) ::flock(fd_, LOCK_UN);
  locked_ = false;
}

std::expected<void, std::string> file_sink::ensure_open() {
  if (fd_ >= 0) return {};
  fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) return std::unexpected(why("cannot open the audit log", path_));
  end_ = ~std::uint64_t{0};  // unknown: read the chain from the file
  return {};
}

std::string file_sink::previous_chain(std::uint64_t size) {
  if (size == 0) return std::string(chain_start);
  char tail[128];
  auto want = std::min<std::uint64_t>(size, sizeof tail);
  auto got = ::pread(fd_, tail, want, static_cast<off_t>(size - want));
  if (got <= 0) return std::string(chain_start);
  auto c = chain_of(std::string_view(tail, static_cast<std::size_t>(got)));
  return c ? *c : std::string(chain_start);  // a foreign last line: verify reports it
}

std::expected<void, std::string> file_sink::append(std::string_view body) {
  const std::string one(body);
  auto r = append_all(std::span<const std::string>(&one, 1));
  unlock();  // no lease without group_commit
  return r;
}

std::expected<void, std::string> file_sink::append_all(std::span<const std::string> bodies) {
  if (auto opened = ensure_open(); !opened) return opened;
  if (!locked_ && ::flock(fd_, LOCK_EX) != 0) return std::unexpected(why("cannot lock the audit log", path_));
  locked_ = true;
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return std::unexpected(why("cannot stat the audit log", path_));
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (size != end_) chain_ = previous_chain(size);  // another writer (or a truncation) came between
  batch_.clear();  // the buffers keep their capacity from batch to batch: no allocation per flush
  pending_chain_.assign(chain_);
  std::size_t total = 0;
  for (auto& body : bodies) total += body.size() + 80;  // and the chain field
  batch_.reserve(total);
  for (auto& body : bodies) append_sealed(batch_, pending_chain_, body);
  if (!write_all(fd_, batch_.data(), batch_.size())) {
    end_ = ~std::uint64_t{0};  // a short write may have left part of the batch: read the chain again
    return std::unexpected(why("cannot write the audit log", path_));
  }
  chain_.swap(pending_chain_);
  end_ = size + batch_.size();
  return {};
}

}  // namespace hsmb::api::audit
