// The worker side of the broker ↔ worker protocol: serves framed requests on one socket with a backend.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "hsm_backends/backend.h"
#include "hsm_backends/wire/frame.h"

namespace hsmb {

// One short line to stderr, prefixed "hsm-worker[pid]: ". Never pass PINs or payloads.
void worker_log(std::string_view line);

// Reads frames from `fd`: first a hello that opens the backend, then requests that run on a pool
// of `sessions` threads and are answered as each finishes (out of order, same id and op).
class worker_server {
 public:
  static constexpr std::size_t max_queued = 1024;

  worker_server(int fd, hsm_backend& backend) : fd_(fd), backend_(backend) {}
  ~worker_server();  // waits for requests already running; queued ones are dropped
  worker_server(const worker_server&) = delete;
  worker_server& operator=(const worker_server&) = delete;

  // Serves until the peer closes the socket (returns 0) or sends a broken frame (returns 2).
  int run();

 private:
  struct job {
    wire::frame_header header;
    secure_bytes payload;
  };

  void dispatch(const wire::frame_header& h, secure_bytes payload);
  void hello(const wire::frame_header& h, byte_view payload);
  void enqueue(const wire::frame_header& h, secure_bytes payload);
  void work();
  void respond(const wire::frame_header& request, const hsm_result<secure_bytes>& result);
  void stop();

  int fd_;
  hsm_backend& backend_;
  bool open_ = false;
  std::mutex write_mutex_;  // one whole frame at a time on the socket
  std::mutex queue_mutex_;
  std::condition_variable queued_;
  std::deque<job> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace hsmb
