// What a member needs from its worker: start it (hello), send it calls with deadlines, kill it,
// hear when it is gone. worker_client is the real one (a process on a socketpair); tests give
// a fake (tests/lib/fake_worker.h) to drive the member layer without processes or HSMs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "hsm_backends/backend.h"
#include "hsm_backends/wire/frame.h"

namespace hsmb {

class worker_channel {
 public:
  virtual ~worker_channel() = default;  // a channel still running kills its worker

  // Starts the worker and sends hello; fails with the worker's error (e.g. CKR_PIN_INCORRECT).
  virtual boost::asio::awaitable<hsm_result<token_description>> start(const member_settings& settings,
                                                                       std::chrono::milliseconds timeout) = 0;
  // One call; the payload is already encoded (wire/messages.h) and is copied before the first
  // suspension. On success returns the response payload. Past `kill_after` the worker is killed
  // (a hung call) and the call fails with fault::call_timeout; past `give_up_after`, if sooner,
  // the caller stops waiting (fault::gave_up) and the worker keeps working.
  virtual boost::asio::awaitable<hsm_result<bytes>> call(
      wire::op operation, byte_view payload, std::chrono::milliseconds kill_after,
      std::chrono::milliseconds give_up_after = std::chrono::milliseconds::max()) = 0;

  // Kills the worker now; calls in flight fail with fault::worker_crashed.
  virtual void kill(const std::string& why) = 0;
  // Runs once when the worker is gone, whoever noticed first (crash, EOF, kill, deadline).
  virtual void on_exit(std::function<void(const hsm_error& why)> callback) = 0;
  virtual bool alive() const = 0;
  virtual pid_t pid() const = 0;
  virtual std::size_t in_flight() const = 0;
};

}  // namespace hsmb
