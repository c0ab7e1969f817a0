#include "broker/worker_client.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "common/coro/resume_slot.h"
#include "broker/typed_call.h"
#include "hsm_backends/wire/messages.h"

extern char** environ;

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;
using local_socket = asio::local::stream_protocol::socket;
using clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

// argv and envp are built before fork: the child may only make async-signal-safe calls.
struct exec_image {
  std::vector<std::string> storage;
  std::vector<char*> argv, envp;
};

exec_image make_image(const worker_launch& launch, int fd) {
  exec_image img;
  img.storage = {launch.program, "--fd", std::to_string(fd)};
  std::size_t nargs = img.storage.size();
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto name = kv.substr(0, kv.find('='));
    if (name == "NOTIFY_SOCKET") continue;  // vendor code must not speak for the broker to its manager
    if (name == "HSMB_MEMBER") continue;  // set below, for this member
    if (!launch.env.count(std::string(name))) img.storage.emplace_back(kv);
  }
  for (auto& [k, v] : launch.env) img.storage.push_back(k + "=" + v);
  img.storage.push_back("HSMB_MEMBER=" + launch.member_name);  // the worker's log lines name their member
  for (std::size_t i = 0; i < img.storage.size(); ++i)
    (i < nargs ? img.argv : img.envp).push_back(img.storage[i].data());
  img.argv.push_back(nullptr);
  img.envp.push_back(nullptr);
  return img;
}

constexpr int child_fd = 3;

[[noreturn]] void exec_child(const exec_image& img, int fd, pid_t parent) {
  if (fd == child_fd) {
    ::fcntl(fd, F_SETFD, 0);
  } else if (::dup2(fd, child_fd) < 0) {
    ::_exit(126);
  }
  // Asio opens sockets without CLOEXEC: no listener or client connection may reach the worker.
  ::close_range(child_fd + 1, ~0U, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the worker must not outlive the broker
  if (::getppid() != parent) ::_exit(125);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(img.argv[0], img.argv.data(), img.envp.data());
  ::_exit(127);
}

hsm_error worker_error(fault where, std::string message) { return broker_fault(where, std::move(message)); }

// SIGKILL and reap. A process in uninterruptible sleep (a driver call) cannot die at once, and
// the io thread must not wait for it: such a process is reaped by a thread of its own.
void reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == pid) return;
  std::thread([pid] {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }).detach();
}

}  // namespace

struct worker_client::impl : std::enable_shared_from_this<impl> {
  // A call waiting for its answer. Whoever removes it from `calls` (an answer, the deadline
  // sweep, the worker's end) sets the result and fires `done`, exactly once.
  struct pending {
    resume_slot* done;
    std::optional<hsm_result<bytes>>* result;
    clock::time_point deadline;
  };

  impl(asio::io_context& io, worker_launch l) : io(io), launch(std::move(l)), socket(io), sweep_timer(io) {}

  asio::io_context& io;
  worker_launch launch;
  local_socket socket;
  pid_t pid = -1;
  bool dead = true;
  std::uint64_t next_id = 1;
  std::unordered_map<std::uint64_t, pending> calls;
  std::deque<bytes> outbox;
  bool writing = false;
  std::function<void(const hsm_error&)> exit_callback;
  asio::steady_timer sweep_timer;  // the earliest deadline among `calls`
  bool sweeping = false;

  hsm_result<void> spawn() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
      return std::unexpected(worker_error(fault::worker_unavailable, std::string("socketpair: ") + std::strerror(errno)));
    auto img = make_image(launch, child_fd);
    pid_t parent = ::getpid();
    pid_t child = ::fork();
    if (child < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      return std::unexpected(worker_error(fault::worker_unavailable, std::string("fork: ") + std::strerror(errno)));
    }
    if (child == 0) exec_child(img, fds[1], parent);
    ::close(fds[1]);
    pid = child;
    boost::system::error_code ec;
    socket.assign(asio::local::stream_protocol(), fds[0], ec);
    if (!ec) socket.non_blocking(true, ec);  // enqueue() writes at once when it can, never blocks
    if (ec) {
      ::close(fds[0]);
      reap(pid);
      return std::unexpected(worker_error(fault::worker_unavailable, "cannot watch the worker's socket: " + ec.message()));
    }
    dead = false;
    spdlog::debug("member {}: worker {} started", launch.member_name, pid);
    return {};
  }

  // Woken through the scheduler: terminate() runs inside other code (a member replacing its
  // worker, a call past its kill deadline), which must finish before the callers run.
  void fail_all(const hsm_error& why) {
    auto pending_calls = std::move(calls);
    calls.clear();
    for (auto& [id, p] : pending_calls) {
      *p.result = std::unexpected(why);
      asio::post(io, [done = p.done] { done->fire(); });
    }
    sweep_timer.cancel();
  }

  // Idempotent: the process is killed and reaped, every call in flight fails.
  void terminate(fault where, const std::string& why) {
    if (dead) return;
    dead = true;
    boost::system::error_code ignored;
    socket.close(ignored);
    if (pid > 0) {
      reap(pid);
      // A failed start is the member's to report (rate-limited while it is down); a worker
      // started for one check (member::start_alone) ends as a matter of course.
      auto level = why == "start failed" || why == "was released" ? spdlog::level::debug : spdlog::level::info;
      spdlog::log(level, "member {}: worker {} stopped: {}", launch.member_name, pid, why);
    }
    for (auto& frame : outbox) secure_wipe(frame.data(), frame.size());
    outbox.clear();
    auto error = worker_error(where, "worker for member " + launch.member_name + " " + why);
    fail_all(error);
    if (auto cb = std::move(exit_callback)) cb(error);
  }

  void deliver(const wire::frame_header& h, bytes payload) {
    auto it = calls.find(h.id);
    if (it == calls.end()) return;  // its caller gave up at the deadline
    auto p = it->second;
    calls.erase(it);
    if (h.result == wire::status::ok) {
      *p.result = std::move(payload);
    } else if (auto e = wire::decode_error(payload)) {
      *p.result = std::unexpected(std::move(*e));
    } else {
      *p.result = std::unexpected(worker_error(fault::worker_crashed, "worker sent a malformed error frame"));
      terminate(fault::worker_crashed, "sent a malformed error frame");
    }
    p.done->fire();  // the caller runs now, from the read loop, with no scheduler hop
  }

  // One timer for all of this worker's calls: a timer per call would cost a scheduler hop to
  // cancel on every answer.
  void watch_deadline(clock::time_point deadline) {
    if (!sweeping) {
      sweeping = true;
      asio::co_spawn(io, sweep_loop(), asio::detached);
    } else if (deadline < sweep_timer.expiry()) {
      sweep_timer.cancel();  // the loop wakes and re-arms for the sooner deadline
    }
  }

  awaitable<void> sweep_loop() {
    auto self = shared_from_this();
    while (!calls.empty()) {
      auto earliest = clock::time_point::max();
      for (auto& [id, p] : calls) earliest = std::min(earliest, p.deadline);
      sweep_timer.expires_at(earliest);
      co_await sweep_timer.async_wait(use_tuple);
      expire_calls(clock::now());
    }
    sweeping = false;
  }

  // The late calls leave `calls` before any of them runs: a woken caller may end the worker.
  void expire_calls(clock::time_point now) {
    std::vector<resume_slot*> late;
    for (auto it = calls.begin(); it != calls.end();) {
      if (it->second.deadline > now) {
        ++it;
        continue;
      }
      late.push_back(it->second.done);
      it = calls.erase(it);
    }
    for (auto* done : late) done->fire();  // no result: the caller sees its deadline passed
  }

  // Reads whatever the worker has sent (often several answers in one recv) and delivers each
  // whole frame.
  awaitable<void> read_loop() {
    auto self = shared_from_this();
    secure_bytes inbox(64 * 1024);  // answers may carry plaintext, also in the buffers resize() frees
    std::size_t used = 0;
    for (;;) {
      if (inbox.size() - used < 4096) inbox.resize(inbox.size() * 2);
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(inbox.data() + used, inbox.size() - used), use_tuple);
      if (ec) break;
      used += n;
      std::size_t taken = 0;
      for (;;) {
        auto f = wire::peek_frame(byte_view(inbox.data() + taken, used - taken));
        if (f.is == wire::frame_at_front::state::broken) {
          terminate(fault::worker_crashed, "sent a malformed frame");
          co_return;
        }
        if (f.is == wire::frame_at_front::state::partial) {
          if (inbox.size() < f.size) inbox.resize(f.size + 4096);
          break;
        }
        auto* body = inbox.data() + taken + wire::header_size;
        deliver(f.header, bytes(body, body + f.header.payload_size));
        taken += f.size;
        if (dead) break;  // a caller woken by deliver() ended this worker
      }
      std::memmove(inbox.data(), inbox.data() + taken, used - taken);
      secure_wipe(inbox.data() + (used - taken), taken);  // answers may carry plaintext
      used -= taken;
      if (dead) co_return;
    }
    terminate(fault::worker_crashed, "exited or closed its socket");
  }

  awaitable<void> write_loop() {
    auto self = shared_from_this();
    while (!outbox.empty() && !dead) {
      std::vector<bytes> batch(std::make_move_iterator(outbox.begin()), std::make_move_iterator(outbox.end()));
      outbox.clear();
      std::vector<asio::const_buffer> buffers;
      buffers.reserve(batch.size());
      for (auto& b : batch) buffers.emplace_back(asio::buffer(b));
      auto [ec, n] = co_await asio::async_write(socket, buffers, use_tuple);
      for (auto& b : batch) secure_wipe(b.data(), b.size());
      if (ec) {
        terminate(fault::worker_crashed, "stopped reading requests (" + ec.message() + ")");
        break;
      }
    }
    writing = false;
  }

  void enqueue(std::uint64_t id, wire::op op, byte_view payload) {
    bytes frame(wire::header_size + payload.size());
    wire::encode_header({static_cast<std::uint32_t>(payload.size()), op, wire::status::ok, id}, frame.data());
    if (!payload.empty()) std::memcpy(frame.data() + wire::header_size, payload.data(), payload.size());
    if (!writing) {
      // Nothing queued: send now. A whole frame usually fits the socket buffer, which saves
      // starting the write loop; what does not fit goes through it.
      // On any error nothing counts as sent: the write loop meets the error again and ends the
      // worker from its own coroutine, not from inside this caller.
      boost::system::error_code ec;
      std::size_t sent = socket.write_some(asio::buffer(frame), ec);
      if (ec) sent = 0;
      secure_wipe(frame.data(), sent);
      if (sent == frame.size()) return;
      frame.erase(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(sent));
    }
    outbox.push_back(std::move(frame));
    if (!writing) {
      writing = true;
      asio::co_spawn(io, write_loop(), asio::detached);
    }
  }
};

worker_client::worker_client(asio::io_context& io, worker_launch launch)
    : impl_(std::make_shared<impl>(io, std::move(launch))) {}

worker_client::~worker_client() { impl_->terminate(fault::worker_unavailable, "was released"); }

awaitable<hsm_result<token_description>> worker_client::start(const member_settings& settings,
                                                              std::chrono::milliseconds timeout) {
  if (auto ok = impl_->spawn(); !ok) co_return std::unexpected(ok.error());
  asio::co_spawn(impl_->io, impl_->read_loop(), asio::detached);
  auto token = co_await typed_call<wire::op::hello>(*this, settings, timeout);  // the PINs go in wiping memory
  if (!token && token.error().where == fault::malformed_reply) {
    impl_->terminate(fault::worker_crashed, "sent a malformed hello reply");
    co_return std::unexpected(worker_error(fault::worker_crashed, "malformed hello reply from worker"));
  }
  co_return token;
}

awaitable<hsm_result<bytes>> worker_client::call(wire::op operation, byte_view payload, std::chrono::milliseconds kill_after,
                                                 std::chrono::milliseconds give_up_after) {
  auto self = impl_;
  if (self->dead) co_return std::unexpected(worker_error(fault::worker_unavailable, "no worker running for member " + self->launch.member_name));
  if (payload.size() > wire::max_payload)
    co_return std::unexpected(hsm_error{0x21 /* CKR_DATA_LEN_RANGE */, "request larger than the worker protocol allows"});
  std::uint64_t id = self->next_id++;
  bool gives_up_first = give_up_after < kill_after;
  auto deadline = clock::now() + (gives_up_first ? give_up_after : kill_after);
  resume_slot done;
  std::optional<hsm_result<bytes>> result;
  self->calls.emplace(id, impl::pending{&done, &result, deadline});
  self->enqueue(id, operation, payload);  // copied into the frame before the first suspension
  self->watch_deadline(deadline);
  co_await done.wait();
  if (result) co_return std::move(*result);
  // The deadline passed; a late answer is dropped by deliver().
  if (gives_up_first)
    co_return std::unexpected(worker_error(fault::gave_up, "the request's deadline passed while member " +
                                                            self->launch.member_name + " worked on it"));
  self->terminate(fault::call_timeout, "killed: a call passed its deadline of " + std::to_string(kill_after.count()) + "ms");
  co_return std::unexpected(worker_error(fault::call_timeout, "member " + self->launch.member_name + " did not answer within " +
                                                              std::to_string(kill_after.count()) + "ms"));
}

void worker_client::kill(const std::string& why) { impl_->terminate(fault::worker_crashed, why); }
void worker_client::on_exit(std::function<void(const hsm_error&)> callback) { impl_->exit_callback = std::move(callback); }
bool worker_client::alive() const { return !impl_->dead; }
pid_t worker_client::pid() const { return impl_->pid; }
std::size_t worker_client::in_flight() const { return impl_->calls.size(); }

}  // namespace hsmb
