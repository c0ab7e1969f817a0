// Frame reading (leader/follower) and answers of the worker process; the ops are in dispatch.cpp.
#include "hsm_backends/worker/worker_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <string>

#include "common/fd_io.h"
#include "common/log_line.h"
#include "hsm_backends/pkcs11/p11.h"
#include "hsm_backends/wire/protocol.h"
#include "hsm_backends/worker/dispatch.h"

namespace hsmb {

void worker_log(std::string_view level, std::string_view line) {
  static const auto format = logline::format_from_env();
  static const auto generation = logline::generation_from_env();
  static const std::string member = [] {
    const char* m = std::getenv("HSMB_MEMBER");
    return std::string(m ? m : "");
  }();
  auto pid = static_cast<int>(getpid());
  std::string out;
  if (format == logline::format::json) {
    out = logline::json_line({std::chrono::system_clock::now(), level, "hsm-worker", pid, generation, member, line});
  } else {
    out = logline::timestamp(std::chrono::system_clock::now()) + " " + std::string(level) + " ";
    if (generation) out += "[gen " + std::to_string(*generation) + "] ";
    out += "hsm-worker[" + std::to_string(pid) + "]" + (member.empty() ? "" : " member " + member) + ": ";
    out.append(line).append("\n");
  }
  std::fwrite(out.data(), 1, out.size(), stderr);  // one write: lines of concurrent processes do not mix
}

worker_server::~worker_server() {
  stopping_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

worker_server::read_status worker_server::next_frame(frame& out) {
  for (;;) {
    auto f = wire::peek_frame(byte_view(inbox_.data(), inbox_used_));
    if (f.is == wire::frame_at_front::state::broken) return read_status::broken;
    if (f.is == wire::frame_at_front::state::whole) {
      out.header = f.header;
      out.payload.assign(inbox_.begin() + wire::header_size, inbox_.begin() + static_cast<std::ptrdiff_t>(f.size));
      std::memmove(inbox_.data(), inbox_.data() + f.size, inbox_used_ - f.size);
      secure_wipe(inbox_.data() + inbox_used_ - f.size, f.size);
      inbox_used_ -= f.size;
      return read_status::ok;
    }
    inbox_.resize(std::max({inbox_.size(), f.size, std::size_t{64 * 1024}}));
    ssize_t n = ::read(fd_, inbox_.data() + inbox_used_, inbox_.size() - inbox_used_);
    if (n > 0) inbox_used_ += static_cast<std::size_t>(n);
    else if (n == 0) return read_status::eof;
    else if (errno != EINTR) {
      worker_log("error", "read failed: " + std::string(std::strerror(errno)));
      return read_status::broken;
    }
  }
}

// Until a hello opens the backend: other ops are refused, a failed hello may be retried.
worker_server::read_status worker_server::hello() {
  for (;;) {
    frame f;
    if (auto r = next_frame(f); r != read_status::ok) return r;
    if (f.header.operation != wire::op::hello) {
      respond(f.header, std::unexpected(hsm_error{ckr_bad_request, "hello expected first"}));
      continue;
    }
    auto settings = wire::decode_request<wire::op::hello>(f.payload);
    secure_wipe(f.payload.data(), f.payload.size());  // it held the PIN
    if (!settings) {
      respond(f.header, std::unexpected(bad_request(f.header.operation)));
      continue;
    }
    auto token = backend_.open(*settings);
    if (!token) {
      // Not logged here: the broker logs it as "member NAME: cannot start", once per outage
      // (a down member is retried every few seconds, each time with a fresh worker).
      respond(f.header, std::unexpected(token.error()));
      continue;
    }
    std::uint32_t threads = std::max<std::uint32_t>(settings->sessions, 1);
    worker_log("info", "serving token '" + token->label + "' with " + std::to_string(threads) + " sessions");
    secure_bytes reply;
    wire::encode_reply<wire::op::hello>(reply, *token);
    respond(f.header, std::move(reply));
    for (std::uint32_t i = 1; i < threads; ++i) threads_.emplace_back([this] { serve(); });
    return read_status::ok;
  }
}

int worker_server::run() {
  auto opened = hello();
  if (opened == read_status::eof) return 0;  // a failed start: the broker tells it, rate-limited
  if (opened != read_status::ok) {
    worker_log("error", "malformed frame or read error, exiting");
    return 2;
  }
  serve();
  for (auto& t : threads_) t.join();
  threads_.clear();
  return exit_code_;
}

void worker_server::serve() {
  frame f;
  for (;;) {
    read_status r;
    {
      std::lock_guard turn(read_mutex_);
      if (stopping_) return;
      r = next_frame(f);
      if (r != read_status::ok) {
        stopping_ = true;
        if (r == read_status::broken) exit_code_ = 2;
        worker_log(r == read_status::eof ? "info" : "error", r == read_status::eof ? "connection closed, exiting" : "malformed frame or read error, exiting");
        ::shutdown(fd_, SHUT_RD);  // threads waiting for the turn see stopping_ and end
        return;
      }
    }
    respond(f.header, dispatch(backend_, f.header.operation, f.payload));  // a second hello is refused there
    secure_wipe(f.payload.data(), f.payload.size());
  }
}

void worker_server::respond(const wire::frame_header& request, const hsm_result<secure_bytes>& result) {
  secure_bytes frame(wire::header_size);  // the answer may carry plaintext or random bytes
  bool ok = result.has_value() && result->size() <= wire::max_payload;
  if (ok) frame.insert(frame.end(), result->begin(), result->end());
  else if (result) wire::encode_error(frame, hsm_error{CKR_DATA_LEN_RANGE, "response too large"});
  else wire::encode_error(frame, result.error());
  wire::frame_header h{static_cast<std::uint32_t>(frame.size() - wire::header_size), request.operation,
                       ok ? wire::status::ok : wire::status::error, request.id};
  wire::encode_header(h, frame.data());
  std::lock_guard lock(write_mutex_);
  write_all(fd_, frame.data(), frame.size());  // a failed write means the broker is gone: run() sees EOF
}

}  // namespace hsmb
