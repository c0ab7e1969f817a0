// The broker's end of one worker process: spawns it with a member's environment, sends framed
// requests (many in flight, matched by id) and enforces a deadline per call. A worker that dies
// or is killed fails every call in flight; the owner decides when to start a new one.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "broker/worker_channel.h"
#include "hsm_backends/backend.h"
#include "hsm_backends/wire/frame.h"

namespace boost::asio {
class io_context;
}

namespace hsmb {

struct worker_launch {
  std::string program;                      // path of hsm-worker
  std::map<std::string, std::string> env;  // added to the broker's environment
  std::string member_name;                  // for logs
};

class worker_client final : public worker_channel {
 public:
  worker_client(boost::asio::io_context& io, worker_launch launch);
  ~worker_client() override;  // kills the process
  worker_client(const worker_client&) = delete;
  worker_client& operator=(const worker_client&) = delete;

  // Spawns the process and sends hello; fails with the worker's error (e.g. CKR_PIN_INCORRECT).
  boost::asio::awaitable<hsm_result<token_description>> start(const member_settings& settings,
                                                               std::chrono::milliseconds timeout) override;
  // One call; the payload is already encoded (wire/messages.h). On success returns the response
  // payload. `payload` is copied before the first suspension: the caller's buffer need not outlive
  // the call. Past `kill_after` the worker is killed (a hung call) and the call fails with
  // fault::call_timeout; past `give_up_after`, if sooner, the caller stops waiting (its request ran
  // out of time, fault::gave_up) and the worker keeps working.
  boost::asio::awaitable<hsm_result<bytes>> call(wire::op operation, byte_view payload, std::chrono::milliseconds kill_after,
                                                 std::chrono::milliseconds give_up_after = std::chrono::milliseconds::max()) override;

  // SIGKILL now; calls in flight fail with fault::worker_crashed.
  void kill(const std::string& why) override;
  // Runs once when the process is gone, whoever noticed first (crash, EOF, kill, deadline).
  void on_exit(std::function<void(const hsm_error& why)> callback) override;
  bool alive() const override;
  pid_t pid() const override;
  std::size_t in_flight() const override;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace hsmb
