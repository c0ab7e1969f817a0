// hsm-bench: closed-loop throughput and latency of one operation, either through the broker's
// HTTP API or in-process through the PKCS#11 backend (the baseline). Options, running, printing.
#include <algorithm>
#include <cstdio>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/broker_target.h"
#include "bench/closed_loop.h"
#include "bench/operation.h"
#include "bench/pkcs11_target.h"
#include "bench/relay_chain.h"
#include "common/duration.h"

namespace {

using namespace hsmb::bench;

constexpr const char* usage = R"(usage:
  hsm-bench broker --socket PATH | --address URL  --op OP [--key NAME] [--clients N]
                   [--duration 10s | --count N] [--json]
  hsm-bench pkcs11 --module PATH --token LABEL --pin-env VAR --op OP [--label OBJLABEL]
                   [--threads N | --threads A..B] [--duration 10s | --count N] [--json]
  hsm-bench relay [--hops 2] [--size 256] [--duration 10s | --count N] [--json]

Closed-loop load: each client (thread) sends its next call as soon as the previous one answered.
A 0.5 s warm-up, not recorded, precedes every measured run.

modes:
  broker   POSTs to the broker's Transit API, one kept-alive connection per client. Any reply
           other than 200 is an error (the first error body is printed).
  pkcs11   calls the token in-process through hsm-broker's own PKCS#11 backend (session pool,
           cached object handles): the baseline. The module's environment (SOFTHSM2_CONF,
           P11_KIT_SERVER_ADDRESS, ...) is inherited. With --threads A..B every thread count
           from A to B is run and printed, then the best run is printed once more.
  relay    the latency floor: one caller sends --size bytes through a chain of --hops relay
           processes (socketpairs, no work; the last one echoes). Two hops cross the process
           boundaries of a broker request: client -> broker -> worker -> broker -> client.

operations (--op):
  sign-ecdsa-p256, sign-rsa-2048, sign-ed25519   sign 32 bytes (broker: SHA-256 of them; pkcs11:
                                                 a 32-byte digest; Ed25519 signs the message)
  encrypt-32, encrypt-4k, decrypt-32, decrypt-4k AES-256-GCM on 32 bytes / 4 KiB (decrypt
                                                 replays one ciphertext made at start)
  hmac                                           HMAC-SHA256 of 32 bytes
  random                                         32 random bytes from the HSM

options:
  --socket PATH       broker's Unix socket
  --address URL       http://HOST:PORT or unix:///PATH
  --key NAME          broker key; default by op: bench-ec (ecdsa-p256), bench-rsa (rsa-2048),
                      bench-ed (ed25519), bench-aes (aes256-gcm96), bench-mac (hmac)
  --clients N         concurrent clients (default 1)
  --module PATH       PKCS#11 library
  --token LABEL       token label
  --pin-env VAR       environment variable holding the user PIN
  --label OBJLABEL    object label; default: that of the default key's version 1 as the broker
                      names it, hsmb/NAME/v1 (a non-hmac key's HMAC companion: hsmb/NAME/v1/hmac)
  --threads N|A..B    concurrent threads, or a range of counts to try (default 1)
  --duration D        measured time per run: 500ms, 10s, 1m (default 10s)
  --count N           measured calls per run (all clients together) instead of a duration
  --hops N            relay: processes in the chain (default 2)
  --size N            relay: bytes per message (default 256)
  --cpu-of NAME=PID   also report the CPU time process PID used per call while measuring;
                      repeatable, and the same NAME twice adds the processes up
  --json              one JSON object per run on stdout: mode, op, concurrency, ops_per_s,
                      p50_ms, p90_ms, p99_ms, max_ms, count, errors, cpu_us_per_op (this
                      process as "hsm-bench", and each --cpu-of name) and "best": true on
                      the repeated best run of a range
  -h, --help          this text

exit status: 0 every call succeeded, 1 a call failed or the target could not be set up,
2 bad usage.
)";

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct thread_range {
  unsigned first = 1, last = 1;
};

struct options {
  std::string mode;
  unsigned hops = 2, size = 256;
  std::vector<watched_process> watched{{"hsm-bench", ::getpid()}};
  std::string socket, address, key, module, token, pin_env, label;
  std::optional<operation> op;
  unsigned clients = 1;
  thread_range threads;
  run_limits limits;
  bool json = false;
};

unsigned parse_count(const std::string& name, const std::string& text, unsigned max) {
  std::size_t used = 0;
  unsigned long v = 0;
  try {
    v = std::stoul(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || v < 1 || v > max)
    throw usage_error(name + ": expected a whole number from 1 to " + std::to_string(max) + ", got \"" + text + "\"");
  return static_cast<unsigned>(v);
}

thread_range parse_threads(const std::string& text) {
  constexpr unsigned max_threads = 256;
  auto dots = text.find("..");
  if (dots == std::string::npos) {
    unsigned n = parse_count("--threads", text, max_threads);
    return {n, n};
  }
  thread_range r{parse_count("--threads", text.substr(0, dots), max_threads),
                 parse_count("--threads", text.substr(dots + 2), max_threads)};
  if (r.first > r.last) throw usage_error("--threads: empty range " + text);
  return r;
}

watched_process parse_watched(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw usage_error("--cpu-of: expected NAME=PID, got \"" + text + "\"");
  auto pid = parse_count("--cpu-of", text.substr(eq + 1), static_cast<unsigned>(std::numeric_limits<pid_t>::max()));
  return {text.substr(0, eq), static_cast<pid_t>(pid)};
}

void apply_value(options& o, const std::string& name, const std::string& value) {
  if (name == "--socket") o.socket = value;
  else if (name == "--address") o.address = value;
  else if (name == "--key") o.key = value;
  else if (name == "--module") o.module = value;
  else if (name == "--token") o.token = value;
  else if (name == "--pin-env") o.pin_env = value;
  else if (name == "--label") o.label = value;
  else if (name == "--clients") o.clients = parse_count(name, value, 4096);
  else if (name == "--threads") o.threads = parse_threads(value);
  else if (name == "--hops") o.hops = parse_count(name, value, 16);
  else if (name == "--size") o.size = parse_count(name, value, 64 * 1024);
  else if (name == "--cpu-of") o.watched.push_back(parse_watched(value));
  else if (name == "--count") o.limits.count = parse_count(name, value, 4'000'000'000U);
  else if (name == "--op") {
    o.op = parse_operation(value);
    if (!o.op) throw usage_error("--op: unknown operation \"" + value + "\"; one of " + operation_names());
  } else if (name == "--duration") {
    auto d = hsmb::parse_duration(value);
    if (!d || d->count() <= 0) throw usage_error("--duration: expected e.g. 500ms, 10s, 1m, got \"" + value + "\"");
    o.limits.duration = *d;
  } else {
    throw usage_error("unknown option " + name + " (see hsm-bench --help)");
  }
}

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      std::exit(0);
    }
    if (i == 1 && arg[0] != '-') {
      o.mode = arg;
      continue;
    }
    if (arg == "--json") {
      o.json = true;
      continue;
    }
    std::optional<std::string> value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    }
    if (!value) throw usage_error(arg + " needs a value");
    apply_value(o, arg, *value);
  }
  return o;
}

void check_options(const options& o) {
  if (o.mode != "broker" && o.mode != "pkcs11" && o.mode != "relay")
    throw usage_error("the first argument must be broker, pkcs11 or relay");
  if (o.mode == "relay") return;
  if (!o.op) throw usage_error("--op is required; one of " + operation_names());
  if (o.mode == "broker" && o.socket.empty() == o.address.empty())
    throw usage_error("broker: give exactly one of --socket, --address");
  if (o.mode == "pkcs11" && (o.module.empty() || o.token.empty() || o.pin_env.empty()))
    throw usage_error("pkcs11: --module, --token and --pin-env are required");
}

// ---- printing ----

std::string ms(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v < 1 ? "%.3f" : v < 100 ? "%.2f" : "%.1f", v);
  return buf;
}

// The watched processes' CPU per measured call, names merged in first-seen order.
std::vector<std::pair<std::string, double>> cpu_per_call(const options& o, const run_result& r) {
  std::vector<std::pair<std::string, double>> out;
  auto calls = static_cast<double>(r.latency.count);
  for (std::size_t i = 0; i < o.watched.size() && i < r.cpu_seconds.size(); ++i) {
    double us = r.cpu_seconds[i] < 0 || calls == 0 ? -1 : r.cpu_seconds[i] * 1e6 / calls;
    auto same = std::find_if(out.begin(), out.end(), [&](auto& e) { return e.first == o.watched[i].name; });
    if (same == out.end()) out.emplace_back(o.watched[i].name, us);
    else same->second = same->second < 0 || us < 0 ? -1 : same->second + us;
  }
  return out;
}

std::string op_name(const options& o) {
  return o.mode == "relay" ? "echo-" + std::to_string(o.size) : std::string(to_string(*o.op));
}

void print_text(const options& o, const std::string& concurrency, const run_result& r, bool best) {
  const auto& l = r.latency;
  std::printf("%s%s %s %s: %.0f ops/s  p50 %s ms  p90 %s  p99 %s  max %s  (n=%llu, errors=%llu)\n",
              best ? "best: " : "", o.mode.c_str(), op_name(o).c_str(), concurrency.c_str(), r.ops_per_s(),
              ms(l.p50_ms).c_str(), ms(l.p90_ms).c_str(), ms(l.p99_ms).c_str(), ms(l.max_ms).c_str(),
              static_cast<unsigned long long>(l.count), static_cast<unsigned long long>(r.errors));
  std::string cpu;
  for (auto& [name, us] : cpu_per_call(o, r))
    if (us >= 0) cpu += (cpu.empty() ? "" : ", ") + name + " " + std::to_string(static_cast<long>(us + 0.5)) + " us";
  if (!cpu.empty() && !best) std::printf("  CPU per call: %s\n", cpu.c_str());
}

// Every string printed is one of ours (mode, op name, --cpu-of names): no escaping needed.
void print_json(const options& o, unsigned concurrency, const run_result& r, bool best) {
  const auto& l = r.latency;
  std::string cpu;
  for (auto& [name, us] : cpu_per_call(o, r)) {
    char value[32];
    std::snprintf(value, sizeof value, "%.1f", us);
    cpu += (cpu.empty() ? "\"" : ",\"") + name + "\":" + (us < 0 ? "null" : value);
  }
  std::printf("{\"mode\":\"%s\",\"op\":\"%s\",\"concurrency\":%u,\"ops_per_s\":%.1f,\"p50_ms\":%.4f,"
              "\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f,\"count\":%llu,\"errors\":%llu,"
              "\"cpu_us_per_op\":{%s}%s}\n",
              o.mode.c_str(), op_name(o).c_str(), concurrency, r.ops_per_s(), l.p50_ms, l.p90_ms, l.p99_ms,
              l.max_ms, static_cast<unsigned long long>(l.count), static_cast<unsigned long long>(r.errors),
              cpu.c_str(), best ? ",\"best\":true" : "");
}

void print_run(const options& o, unsigned concurrency, const run_result& r, bool best = false) {
  std::string unit = o.mode == "pkcs11" ? "threads=" : "clients=";
  if (o.json) print_json(o, concurrency, r, best);
  else print_text(o, unit + std::to_string(concurrency), r, best);
  std::fflush(stdout);
  if (r.errors > 0 && !best)
    std::cerr << "hsm-bench: " << r.errors << " failed calls; the first: " << r.first_error << "\n";
}

// ---- running ----

int run_broker(const options& o) {
  broker_target_options t;
  if (!o.socket.empty()) {
    t.endpoint.unix_path = o.socket;
  } else {
    auto ep = hsmb::client::parse_address(o.address);
    if (!ep) throw usage_error("--address: cannot parse \"" + o.address + "\"");
    t.endpoint = *ep;
  }
  t.op = *o.op;
  t.key = o.key.empty() ? std::string(default_key(*o.op)) : o.key;
  auto target = broker_target::prepare(t);
  if (!target) {
    std::cerr << "hsm-bench: " << target.error() << "\n";
    return 1;
  }
  std::vector<call_fn> calls;
  for (unsigned i = 0; i < o.clients; ++i) calls.push_back(target->make_call());
  auto r = run_closed_loop(calls, o.limits, o.watched);
  print_run(o, o.clients, r);
  return r.errors > 0 ? 1 : 0;
}

// By value: the relays join the watched processes.
int run_relay(options o) {
  auto chain = relay_chain::start(o.hops);
  if (!chain) {
    std::cerr << "hsm-bench: " << chain.error() << "\n";
    return 1;
  }
  std::vector<call_fn> calls{(*chain)->make_call(o.size)};
  for (pid_t pid : (*chain)->pids()) o.watched.push_back({"relays", pid});
  auto r = run_closed_loop(calls, o.limits, o.watched);
  print_run(o, 1, r);
  return r.errors > 0 ? 1 : 0;
}

int run_pkcs11(const options& o) {
  pkcs11_target_options t{o.module, o.token, o.pin_env, o.label, *o.op, o.threads.last};
  auto target = pkcs11_target::open(t);
  if (!target) {
    std::cerr << "hsm-bench: " << target.error() << "\n";
    return 1;
  }
  std::optional<std::pair<unsigned, run_result>> best;
  bool failed = false;
  for (unsigned n = o.threads.first; n <= o.threads.last; ++n) {
    std::vector<call_fn> calls(n, (*target)->make_call());
    auto r = run_closed_loop(calls, o.limits, o.watched);
    print_run(o, n, r);
    failed |= r.errors > 0;
    if (!best || r.ops_per_s() > best->second.ops_per_s()) best.emplace(n, std::move(r));
  }
  if (o.threads.first != o.threads.last) print_run(o, best->first, best->second, true);
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto o = parse_options(argc, argv);
    check_options(o);
    if (o.mode == "relay") return run_relay(o);
    return o.mode == "broker" ? run_broker(o) : run_pkcs11(o);
  } catch (const usage_error& e) {
    std::cerr << "hsm-bench: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "hsm-bench: " << e.what() << "\n";
    return 1;
  }
}
