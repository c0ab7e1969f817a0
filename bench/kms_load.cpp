// hsm-kms-load: open-loop load on hsm-kms-plugin, as kube-apiserver's start-up makes it:
// Decrypts at a fixed rate from several threads, latency measured from each request's scheduled
// time (so a stall counts against every request it delayed), then p50/p99/p99.9/max.
//   hsm-kms-load --socket SOCK [--rate 1000] [--seconds 10] [--threads 8]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kms_v2/api.grpc.pb.h"

namespace {

using clock_type = std::chrono::steady_clock;

struct sample {
  std::string ciphertext, key_id, plaintext;
};

double arg(int argc, char** argv, const std::string& name, double fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return std::atof(argv[i + 1]);
  return fallback;
}

std::string text_arg(int argc, char** argv, const std::string& name) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return "";
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket = text_arg(argc, argv, "--socket");
  if (socket.empty()) {
    std::fprintf(stderr, "usage: hsm-kms-load --socket SOCK [--rate N] [--seconds S] [--threads T]\n");
    return 2;
  }
  double rate = arg(argc, argv, "--rate", 1000);
  double seconds = arg(argc, argv, "--seconds", 10);
  int threads = static_cast<int>(arg(argc, argv, "--threads", 8));
  auto channel = grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
  auto stub = v2::KeyManagementService::NewStub(channel);

  std::vector<sample> samples;
  for (int i = 0; i < 64; ++i) {  // 32-byte DEKs, as the apiserver sends
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v2::EncryptRequest q;
    std::string dek(32, static_cast<char>(i));
    q.set_plaintext(dek);
    v2::EncryptResponse r;
    auto s = stub->Encrypt(&ctx, q, &r);
    if (!s.ok()) {
      std::fprintf(stderr, "hsm-kms-load: Encrypt failed: %s\n", s.error_message().c_str());
      return 1;
    }
    samples.push_back({r.ciphertext(), r.key_id(), dek});
  }

  auto total = static_cast<long>(rate * seconds);
  auto interval = std::chrono::duration<double>(1.0 / rate);
  auto start = clock_type::now() + std::chrono::milliseconds(100);
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<long> failed{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::vector<double> mine;
      for (long i = t; i < total; i += threads) {
        auto due = start + std::chrono::duration_cast<clock_type::duration>(interval * static_cast<double>(i));
        std::this_thread::sleep_until(due);
        auto& s = samples[static_cast<std::size_t>(i) % samples.size()];
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));  // the apiserver's default
        v2::DecryptRequest q;
        q.set_ciphertext(s.ciphertext);
        q.set_key_id(s.key_id);
        v2::DecryptResponse r;
        auto st = stub->Decrypt(&ctx, q, &r);
        mine.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - due).count());
        if (!st.ok() || r.plaintext() != s.plaintext) ++failed;
      }
      std::lock_guard lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  for (auto& t : pool) t.join();
  double took = std::chrono::duration<double>(clock_type::now() - start).count();
  auto n = latencies.size();
  double p50 = percentile(latencies, 0.50), p99 = percentile(latencies, 0.99), p999 = percentile(latencies, 0.999);
  double max = latencies.empty() ? 0 : *std::max_element(latencies.begin(), latencies.end());
  std::printf("decrypts %zu in %.2f s (%.0f/s, target %.0f/s, %d threads), failed %ld\n", n, took,
              static_cast<double>(n) / took, rate, threads, failed.load());
  std::printf("latency ms: p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n", p50, p99, p999, max);
  return failed.load() == 0 ? 0 : 1;
}
