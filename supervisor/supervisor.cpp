#include "supervisor/supervisor.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include <spdlog/spdlog.h>

#include "common/sd_notify.h"
#include "common/service_env.h"
#include "supervisor/config_check.h"

namespace hsmb::supervisor {
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr auto tick_period = 50ms;
constexpr std::chrono::milliseconds max_backoff = 10s;
constexpr auto stable_after = 10s;     // a generation serving this long resets the crash backoff
constexpr auto kill_margin = 5s;       // past drain_timeout, a draining broker is killed

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
  return "ended";
}

std::chrono::milliseconds next_backoff(std::chrono::milliseconds b) {
  return b.count() == 0 ? 250ms : std::min(max_backoff, b * 2);
}

}  // namespace

supervisor::supervisor(asio::io_context& io, launch_spec spec, service_settings settings, std::vector<listen_socket> sockets)
    : io_(io), spec_(std::move(spec)), settings_(std::move(settings)), sockets_(std::move(sockets)), ticker_(io),
      signals_(io, SIGTERM, SIGINT, SIGHUP) {
  systemd_watchdog_ = take_watchdog_period().value_or(std::chrono::microseconds(0));
}

void supervisor::run() {
  wait_for_signal();
  start_generation("start-up");
  schedule_tick();
}

void supervisor::schedule_tick() {
  ticker_.expires_after(tick_period);
  ticker_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    tick();
    if (!io_.stopped()) schedule_tick();
  });
}

void supervisor::wait_for_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) reload();
    else shut_down(sig);
    wait_for_signal();
  });
}

generation* supervisor::serving() {
  for (auto& g : generations_)
    if (g.state == generation::phase::ready) return &g;
  return nullptr;
}

generation* supervisor::starting() {
  for (auto& g : generations_)
    if (g.state == generation::phase::starting) return &g;
  return nullptr;
}

clock::duration supervisor::jittered_interval() {
  std::uniform_real_distribution<double> f(1.0 - settings_.restart_jitter, 1.0 + settings_.restart_jitter);
  return std::chrono::duration_cast<clock::duration>(settings_.restart_interval * f(rng_));
}

void supervisor::start_generation(std::string_view why) {
  auto& g = generations_.emplace_back();
  g.number = next_number_++;
  g.reason = why;
  int number = g.number;
  try {
    g.notify = std::make_unique<notify_receiver>(io_, [this, number](std::string_view m) { on_message(number, m); });
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    generations_.pop_back();
    fail_start_later("cannot create a notify socket");
    return;
  }
  g.started = g.last_heartbeat = clock::now();
  bool handoff = serving() != nullptr;
  g.pid = spawn_broker(spec_, sockets_, g.notify->address(), g.number, settings_.heartbeat_timeout, handoff);
  if (g.pid < 0) {
    generations_.pop_back();
    fail_start_later("fork failed");
    return;
  }
  g.notify->accept_from(g.pid);  // set before the io loop runs again: no datagram is read before
  spdlog::info("generation {} starting (pid {}): {}", g.number, g.pid, why);
}

void supervisor::fail_start_later(std::string_view what) {
  backoff_ = next_backoff(backoff_);
  next_start_ = clock::now() + backoff_;
  if (serving()) next_handoff_ = clock::now() + backoff_;  // a failed hand-off is retried
  spdlog::error("{}; next attempt in {} ms", what, backoff_.count());
}

void supervisor::on_message(int number, std::string_view message) {
  generation* g = nullptr;
  for (auto& x : generations_)
    if (x.number == number && x.alive()) g = &x;
  if (!g) return;
  std::istringstream lines{std::string(message)};
  for (std::string line; std::getline(lines, line);) {
    if (line == "READY=1" && g->state == generation::phase::starting) on_ready(*g);
    else if (line == "WATCHDOG=1") g->last_heartbeat = clock::now();
    else if (line.starts_with("STATUS=")) {
      g->status = line.substr(7);
      if (g == serving()) report_status();
    }
  }
}

void supervisor::on_ready(generation& g) {
  auto now = clock::now();
  g.state = generation::phase::ready;
  g.ready_at = g.last_heartbeat = now;
  spdlog::info("generation {} ready ({})", g.number, g.reason);
  for (auto& other : generations_)
    if (&other != &g && other.state == generation::phase::ready)
      drain(other, "replaced by generation " + std::to_string(g.number) + " (" + g.reason + ")");
  // A SIGHUP that came after this generation was started still needs a generation that read it.
  next_handoff_ = reload_requested_ > g.started ? now : now + jittered_interval();
  if (!announced_ready_) sd_notify("READY=1");
  announced_ready_ = true;
  report_status();
}

void supervisor::drain(generation& g, std::string_view why) {
  spdlog::info("generation {} draining: {}", g.number, why);
  g.state = generation::phase::draining;
  g.drain_started = clock::now();
  g.signal(SIGTERM);
}

void supervisor::report_status() {
  auto* g = serving();
  std::string text = g ? "generation " + std::to_string(g->number) + (g->status.empty() ? "" : ": " + g->status)
                       : std::string("no broker serving");
  sd_notify("STATUS=" + text);
}

void supervisor::reap() {
  for (auto& g : generations_) {
    if (!g.alive()) continue;
    int status = 0;
    if (::waitpid(g.pid, &status, WNOHANG) == g.pid) on_exit(g, status);
  }
  generations_.remove_if([](const generation& g) { return !g.alive(); });
}

void supervisor::on_exit(generation& g, int status) {
  auto was = g.state;
  g.state = generation::phase::exited;  // reap() removes it
  auto how = describe_exit(status);
  if (shutting_down_ || was == generation::phase::draining) {
    spdlog::info("generation {} {}", g.number, how);
    return;
  }
  if (was == generation::phase::ready) {
    spdlog::error("generation {} {} while serving; restarting", g.number, how);
    next_start_ = clock::now() + backoff_;  // the first crash restarts at once; repeated ones back off
    backoff_ = next_backoff(backoff_);
    report_status();
    return;
  }
  fail_start_later("generation " + std::to_string(g.number) + " " + how + " before it was ready");
}

void supervisor::check_deadlines(clock::time_point now) {
  for (auto& g : generations_) {
    using phase = generation::phase;
    if (g.state == phase::starting && now - g.started > settings_.ready_timeout) {
      spdlog::error("generation {} not ready after {} ms; killing it", g.number, settings_.ready_timeout.count());
      g.signal(SIGKILL);
    } else if (g.state == phase::ready && now - g.last_heartbeat > settings_.heartbeat_timeout) {
      spdlog::error("generation {} sent no heartbeat for {} ms: hung; killing it", g.number, settings_.heartbeat_timeout.count());
      g.signal(SIGKILL);
    } else if (g.state == phase::draining && now - g.drain_started > settings_.drain_timeout + kill_margin) {
      spdlog::warn("generation {} still draining after drain_timeout; killing it", g.number);
      g.signal(SIGKILL);
    }
  }
}

void supervisor::tick() {
  reap();
  auto now = clock::now();
  check_deadlines(now);
  if (shutting_down_) {
    if (generations_.empty()) {
      spdlog::info("every generation has exited; stopping");
      io_.stop();
    }
    return;
  }
  auto* current = serving();
  bool draining = false;
  for (auto& g : generations_) draining |= g.state == generation::phase::draining;
  if (!current && !starting() && now >= next_start_) start_generation("no broker serving");
  // At most two generations at once: a hand-off waits for the previous one's drain to finish.
  if (current && !starting() && !draining && next_handoff_ && now >= *next_handoff_) {
    next_handoff_.reset();
    // The serving generation started before the last accepted SIGHUP: this hand-off is the reload.
    start_generation(reload_requested_ > current->started ? "configuration reloaded (SIGHUP)" : "periodic restart");
  }
  if (current && backoff_.count() && now - current->ready_at > stable_after) backoff_ = 0ms;
  ping_systemd(now);
}

bool supervisor::healthy(clock::time_point now) {
  auto* g = serving();
  return g && now - g->last_heartbeat <= settings_.heartbeat_timeout;
}

// systemd's watchdog hears from the supervisor only while a broker is serving and alive.
void supervisor::ping_systemd(clock::time_point now) {
  if (systemd_watchdog_.count() <= 0 || now < next_ping_) return;
  next_ping_ = now + std::chrono::duration_cast<clock::duration>(systemd_watchdog_ / 3);
  if (healthy(now)) sd_notify("WATCHDOG=1");
}

void supervisor::reload() {
  spdlog::info("SIGHUP: re-reading {}", spec_.config_path);
  service_settings next;
  try {
    next = load_service_settings(spec_.config_path);
  } catch (const std::exception& e) {
    spdlog::error("configuration rejected, the running generation stays: {}", e.what());
    return;
  }
  bool passed = broker_accepts_config(spec_);  // the rest of the file: members, PINs, ...
  // The check blocked this loop: heartbeats that arrived meanwhile are still queued, unread.
  for (auto& g : generations_) g.last_heartbeat = std::max(g.last_heartbeat, clock::now());
  if (!passed) {
    spdlog::error("configuration rejected by hsm-broker --check; the running generation stays");
    return;
  }
  settings_ = std::move(next);
  reload_requested_ = clock::now();
  next_handoff_ = clock::now();  // the next tick hands off to a generation with the new configuration
}

void supervisor::shut_down(int sig) {
  if (shutting_down_) return;
  spdlog::info("signal {}: draining every generation", sig);
  shutting_down_ = true;
  sd_notify("STOPPING=1");
  for (auto& g : generations_)
    if (g.alive()) drain(g, "shutting down");
}

}  // namespace hsmb::supervisor
