// The worker side of the broker ↔ worker protocol: serves framed requests on one socket with a backend.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "hsm_backends/backend.h"
#include "hsm_backends/wire/frame.h"

namespace hsmb {

// One short line to stderr as the broker logs (common/log_line.h): "TIME LEVEL [gen N]
// hsm-worker[pid] member NAME: line" (HSMB_GENERATION, HSMB_MEMBER from the broker), or a JSON
// line with HSMB_LOG_FORMAT=json. `level`: "info", "warning", "error". Never pass PINs or payloads.
void worker_log(std::string_view level, std::string_view line);

// Reads frames from `fd`: first a hello that opens the backend, then requests served by
// `sessions` threads that take turns reading (leader/follower): the thread that reads a request
// runs it and answers it, while the next one reads, so no request is handed between threads.
// Answers go out as each finishes (out of order, same id and op).
class worker_server {
 public:
  worker_server(int fd, hsm_backend& backend) : fd_(fd), backend_(backend) {}
  ~worker_server();  // waits for requests already running
  worker_server(const worker_server&) = delete;
  worker_server& operator=(const worker_server&) = delete;

  // Serves until the peer closes the socket (returns 0) or sends a broken frame (returns 2).
  int run();

 private:
  struct frame {
    wire::frame_header header;
    secure_bytes payload;
  };
  enum class read_status { ok, eof, broken };

  // Next whole frame from the socket, through a buffer (one read() often brings several).
  read_status next_frame(frame& out);
  read_status hello();
  void serve();  // each thread: take the read turn, read one request, run it, answer it
  void respond(const wire::frame_header& request, const hsm_result<secure_bytes>& result);

  int fd_;
  hsm_backend& backend_;
  std::mutex read_mutex_;   // the read turn
  secure_bytes inbox_;      // bytes read but not yet taken as frames (may hold plaintext)
  std::size_t inbox_used_ = 0;
  std::mutex write_mutex_;  // one whole frame at a time on the socket
  std::atomic<bool> stopping_{false};
  std::atomic<int> exit_code_{0};
  std::vector<std::thread> threads_;
};

}  // namespace hsmb
