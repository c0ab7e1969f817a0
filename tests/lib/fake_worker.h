// A worker without a process or an HSM, for tests of the member layer (member, member_pool) and
// of what runs on it (catalog loads, claims). A fake token answers hello with a description
// (mechanisms included, so capabilities work), probes, the known-answer check (right, or wrong on
// demand), generate_key (a real ECDSA P-256 pair for ecdsa-p256, a placeholder otherwise),
// public_key, sign, key_check and destroy_objects on those, and metadata records kept in memory;
// other ops answer a blob of the token's label unless the test gives a handler (on()). Any call
// can be scripted to fail, hang, crash its worker or answer late.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/config.h"
#include "broker/worker_channel.h"

namespace boost::asio {
class io_context;
}

namespace hsmb::test {

// What the fake does with one call (op::hello: with one worker start).
struct fake_step {
  enum class kind { answer, fail, hang, crash, slow };
  kind what = kind::answer;
  hsm_error error;                     // fail
  std::chrono::milliseconds delay{0};  // slow: the normal answer, this late

  static fake_step answer() { return {}; }
  static fake_step fail(unsigned long ckr, std::string message = "scripted failure");
  static fake_step device_error();  // CKR_DEVICE_ERROR: a member failure
  // No answer until fake_token::resume(): the call ends at its deadline (the worker is killed)
  // or when the worker dies, unless resumed first.
  static fake_step hang() { return {kind::hang}; }
  // The worker dies: this call and every other in flight fail, its exit callback runs.
  static fake_step crash() { return {kind::crash}; }
  static fake_step slow(std::chrono::milliseconds delay) { return {kind::slow, {}, delay}; }
};

// One fake HSM. Its token (description, keys, records) outlives the workers that come and go on
// it, as a real token does. Single-threaded, like the broker's io_context.
class fake_token {
 public:
  explicit fake_token(std::string label);
  ~fake_token();
  fake_token(const fake_token&) = delete;
  fake_token& operator=(const fake_token&) = delete;

  const std::string& label() const;
  // What hello answers; change the mechanisms to take capabilities away.
  token_description& description();

  // The next `times` calls of `op` do `s`; rules queue up per op, answer() when none is left.
  void script(wire::op op, fake_step s, int times = 1);
  // Every call of `op` does `s`, after the scripted ones, until clear(op).
  void always(wire::op op, fake_step s);
  void clear(wire::op op);
  // Signatures that do not verify, the known-answer canary's too (a token computing wrong).
  void answer_wrongly(bool wrong);
  // Hung calls get their answers now, as from an HSM that continues after a stop.
  void resume();
  // Replaces the fake's answer to `op` (ops it does not model answer a blob of the label).
  void on(wire::op op, std::function<hsm_result<bytes>(byte_view payload)> handler);

  // Calls that reached a worker, answered or not; op::hello counts worker starts attempted.
  std::size_t calls(wire::op op) const;
  std::size_t workers_started() const;  // hellos answered
  std::size_t workers_alive() const;
  // Records as SoftHSM2's file store shows them to each process: a worker that creates or deletes
  // one takes the token's new generation as seen (Generation::commit), so it misses what other
  // workers created or deleted since its last find, until the generation moves again.
  void per_process_views(bool on);
  // put_metadata / list_metadata / delete_metadata work on these; a test may edit them.
  std::vector<metadata_record>& records();

  struct state;
  std::shared_ptr<state> shared() const { return state_; }

 private:
  std::shared_ptr<state> state_;
};

// One worker on a fake token, as a member sees it.
class fake_worker final : public worker_channel {
 public:
  fake_worker(boost::asio::io_context& io, std::shared_ptr<fake_token::state> token);
  ~fake_worker() override;

  boost::asio::awaitable<hsm_result<token_description>> start(const member_settings& settings,
                                                               std::chrono::milliseconds timeout) override;
  boost::asio::awaitable<hsm_result<bytes>> call(
      wire::op operation, byte_view payload, std::chrono::milliseconds kill_after,
      std::chrono::milliseconds give_up_after = std::chrono::milliseconds::max()) override;
  void kill(const std::string& why) override;
  void on_exit(std::function<void(const hsm_error& why)> callback) override;
  bool alive() const override;
  pid_t pid() const override;
  std::size_t in_flight() const override;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

// The factory member_deps takes: each member's workers run on the token labelled like the member.
std::function<std::unique_ptr<worker_channel>(const member_config&)> fake_workers(
    boost::asio::io_context& io, std::vector<std::shared_ptr<fake_token>> tokens);

}  // namespace hsmb::test
