// The worker the worker_replies target starts: it reads the broker's hello frame, answers with
// the bytes of the file named by HSMB_FUZZ_REPLIES (the fuzzer's input: any bytes at all, as a
// buggy or compromised worker might send), stops writing, and reads until the broker lets go.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

bool read_exactly(int fd, void* data, std::size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int fd = argc == 3 && std::strcmp(argv[1], "--fd") == 0 ? std::atoi(argv[2]) : -1;
  const char* path = std::getenv("HSMB_FUZZ_REPLIES");
  if (fd < 3 || !path) return 2;
  std::vector<char> replies;
  if (int in = ::open(path, O_RDONLY | O_CLOEXEC); in >= 0) {
    char buf[65536];
    for (ssize_t n; (n = ::read(in, buf, sizeof buf)) > 0;) replies.insert(replies.end(), buf, buf + n);
    ::close(in);
  }
  unsigned char header[16];
  if (!read_exactly(fd, header, sizeof header)) return 0;
  std::uint32_t size = header[0] | header[1] << 8 | header[2] << 16 | std::uint32_t(header[3]) << 24;
  std::vector<char> hello(size);
  if (!read_exactly(fd, hello.data(), hello.size())) return 0;
  write_all(fd, replies.data(), replies.size());
  ::shutdown(fd, SHUT_WR);
  char sink[4096];
  while (::read(fd, sink, sizeof sink) > 0) {
  }
  return 0;
}
