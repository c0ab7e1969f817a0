// Test helper: steady, bounded client load on a broker (threads with keep-alive connections,
// a pause between requests), recording every status and latency, so a test can assert that no
// request failed while it injected faults.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/client/broker_client.h"

namespace hsmb::test {

struct load_request {
  std::string method, target, body;
};

class load_generator {
 public:
  load_generator(client::endpoint ep, int threads, std::function<load_request(int thread, int n)> next,
                 std::chrono::milliseconds pause = std::chrono::milliseconds(2));
  ~load_generator();
  void stop();

  int sent() const { return sent_; }
  int count(unsigned status) const;
  int failures() const;                   // anything but 2xx, or a transport error
  std::vector<std::string> failure_samples() const;  // first few, with status and body
  double percentile_ms(double p) const;
  std::string summary() const;

 private:
  void run(int thread);
  client::endpoint ep_;
  std::function<load_request(int, int)> next_;
  std::chrono::milliseconds pause_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0};
  mutable std::mutex mu_;
  std::map<unsigned, int> statuses_;
  std::vector<double> latencies_ms_;
  std::vector<std::string> samples_;
  std::vector<std::thread> threads_;
};

}  // namespace hsmb::test
