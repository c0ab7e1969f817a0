// The closed-loop load driver; see closed_loop.h.
#include "bench/closed_loop.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

namespace hsmb::bench {
namespace {

using clock = std::chrono::steady_clock;

// What the load threads share: the schedule, the count left, and the errors.
struct shared_state {
  clock::time_point measure_from, measure_until;
  bool by_count = false;
  std::atomic<std::int64_t> remaining{0};
  std::atomic<std::uint64_t> errors{0};
  std::mutex mutex;  // guards first_error
  std::string first_error;
};

struct thread_outcome {
  latency_recorder latencies;
  clock::time_point last_answer;
};

void note_error(shared_state& s, std::string message) {
  if (s.errors.fetch_add(1) > 0) return;
  std::lock_guard lock(s.mutex);
  s.first_error = std::move(message);
}

// A call that throws counts as a failed call; nothing leaves the load thread.
std::optional<std::string> safe_call(call_fn& call) {
  try {
    return call();
  } catch (const std::exception& e) {
    return std::string(e.what());
  } catch (...) {
    return std::string("unknown exception");
  }
}

void warm_up(call_fn& call, shared_state& s) {
  while (clock::now() < s.measure_from)
    if (auto e = safe_call(call)) note_error(s, std::move(*e));
}

bool may_call(shared_state& s) {
  if (s.by_count) return s.remaining.fetch_sub(1) > 0;
  return clock::now() < s.measure_until;
}

void measure(call_fn& call, shared_state& s, thread_outcome& out) {
  out.last_answer = s.measure_from;
  while (may_call(s)) {
    auto start = clock::now();
    auto error = safe_call(call);
    auto end = clock::now();
    if (error) note_error(s, std::move(*error));
    else out.latencies.record(end - start);
    out.last_answer = end;
  }
}

void load_thread(call_fn& call, shared_state& s, thread_outcome& out) {
  warm_up(call, s);
  measure(call, s, out);
}

}  // namespace

run_result run_closed_loop(std::vector<call_fn>& calls, const run_limits& limits,
                           const std::vector<watched_process>& watched) {
  shared_state s;
  s.measure_from = clock::now() + limits.warm_up;
  s.measure_until = s.measure_from + limits.duration;
  s.by_count = limits.count.has_value();
  s.remaining = static_cast<std::int64_t>(limits.count.value_or(0));
  std::vector<thread_outcome> outcomes(calls.size());
  std::vector<double> cpu_before;
  {
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < calls.size(); ++i)
      threads.emplace_back(load_thread, std::ref(calls[i]), std::ref(s), std::ref(outcomes[i]));
    std::this_thread::sleep_until(s.measure_from);
    cpu_before = read_cpu(watched);
  }
  run_result r;
  auto cpu_after = read_cpu(watched);
  for (std::size_t i = 0; i < watched.size(); ++i)
    r.cpu_seconds.push_back(cpu_before[i] < 0 || cpu_after[i] < 0 ? -1 : cpu_after[i] - cpu_before[i]);
  std::vector<latency_recorder> recorders;
  auto last = s.measure_from;
  for (auto& o : outcomes) {
    recorders.push_back(std::move(o.latencies));
    last = std::max(last, o.last_answer);
  }
  r.latency = summarize(recorders);
  r.seconds = std::chrono::duration<double>(last - s.measure_from).count();
  r.errors = s.errors.load();
  r.first_error = std::move(s.first_error);
  return r;
}

}  // namespace hsmb::bench
