#include "tests/lib/load_generator.h"

#include <algorithm>
#include <sstream>

namespace hsmb::test {

load_generator::load_generator(client::endpoint ep, int threads, std::function<load_request(int, int)> next,
                               std::chrono::milliseconds pause)
    : ep_(std::move(ep)), next_(std::move(next)), pause_(pause) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { run(i); });
}

load_generator::~load_generator() { stop(); }

void load_generator::stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void load_generator::run(int thread) {
  client::broker_client c(ep_, std::chrono::seconds(30));
  for (int n = 0; !stop_; ++n) {
    auto req = next_(thread, n);
    auto start = std::chrono::steady_clock::now();
    unsigned status = 0;
    std::string body;
    try {
      auto r = c.request(req.method, req.target, req.body);
      status = r.status;
      body = r.body;
    } catch (const std::exception& e) {
      body = e.what();  // status 0: transport error
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    {
      std::lock_guard lock(mu_);
      ++statuses_[status];
      latencies_ms_.push_back(ms);
      if ((status < 200 || status >= 300) && samples_.size() < 5)
        samples_.push_back(std::to_string(status) + " " + req.target + ": " + body.substr(0, 400));
    }
    ++sent_;
    std::this_thread::sleep_for(pause_);  // bounded load: pacing, not synchronisation
  }
}

int load_generator::count(unsigned status) const {
  std::lock_guard lock(mu_);
  auto it = statuses_.find(status);
  return it == statuses_.end() ? 0 : it->second;
}

int load_generator::failures() const {
  std::lock_guard lock(mu_);
  int n = 0;
  for (auto& [s, c] : statuses_)
    if (s < 200 || s >= 300) n += c;
  return n;
}

std::vector<std::string> load_generator::failure_samples() const {
  std::lock_guard lock(mu_);
  return samples_;
}

double load_generator::percentile_ms(double p) const {
  std::lock_guard lock(mu_);
  if (latencies_ms_.empty()) return 0;
  auto v = latencies_ms_;
  auto k = static_cast<std::size_t>(p * double(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

std::string load_generator::summary() const {
  std::ostringstream out;
  out << "sent " << sent() << ", failures " << failures() << ", p50 " << percentile_ms(0.5) << " ms, p99 "
      << percentile_ms(0.99) << " ms, max " << percentile_ms(1.0) << " ms";
  for (auto& s : failure_samples()) out << "\n  " << s;
  return out.str();
}

}  // namespace hsmb::test
