// hsm-kms-plugin: the Kubernetes KMS v2 plugin. kube-apiserver calls it over gRPC on a Unix
// socket; it encrypts and decrypts the apiserver's data keys with a Transit key of hsm-broker,
// so the key stays in the HSMs and survives their failures.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <expected>
#include <iostream>
#include <iterator>
#include <thread>

#include "kms_plugin/broker_pool.h"
#include "kms_plugin/command_line.h"
#include "kms_plugin/grpc_service.h"
#include "kms_plugin/plugin_core.h"
#include "kms_plugin/transit_key.h"

namespace {

using namespace hsmb::kms;

void setup_logging() {
  auto logger = spdlog::stderr_color_mt("hsm-kms-plugin");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  if (const char* level = std::getenv("HSMB_LOG_LEVEL")) spdlog::set_level(spdlog::level::from_str(level));
}

// The token file's first line, without surrounding white space, read straight into wiping memory;
// an error message when unreadable.
std::expected<hsmb::secure_string, std::string> read_token(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected("cannot read --token-file " + path + ": " + std::strerror(errno));
  hsmb::secure_string token;
  char chunk[256];
  ssize_t n = 0;
  while (token.size() <= 4096 && ((n = ::read(fd, chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR)))
    if (n > 0) token.append(chunk, static_cast<std::size_t>(n));
  int read_errno = errno;
  hsmb::secure_wipe(chunk, sizeof chunk);
  ::close(fd);
  if (n < 0) return std::unexpected("cannot read --token-file " + path + ": " + std::strerror(read_errno));
  if (token.size() > 4096) return std::unexpected("--token-file " + path + " is larger than a token (4 KiB)");
  if (auto eol = token.find('\n'); eol != std::string::npos) token.resize(eol);
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!token.empty() && space(token.back())) token.pop_back();
  std::size_t lead = 0;
  while (lead < token.size() && space(token[lead])) ++lead;
  token.erase(0, lead);
  if (token.empty()) return std::unexpected("--token-file " + path + " is empty");
  return token;
}

// A socket left by a previous run is removed; any other file at that path is an error.
bool clear_socket_path(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT;
  return S_ISSOCK(st.st_mode) && ::unlink(path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  if (!opts) {
    std::cerr << "hsm-kms-plugin: " << opts.error() << "\n" << usage;
    return 2;
  }
  if (opts->help) {
    std::cout << usage;
    return 0;
  }
  setup_logging();
  hsmb::secure_string token;
  if (!opts->token_file.empty()) {
    auto t = read_token(opts->token_file);
    if (!t) {
      spdlog::error("{}", t.error());
      return 2;
    }
    token = std::move(*t);
  }
  // SIGTERM and SIGINT are taken by a thread of their own (sigwait); SIGPIPE never kills us.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  hsmb::client::endpoint broker;
  broker.unix_path = opts->broker_socket;
  broker_pool probe_pool(broker, token, 2, std::chrono::milliseconds(1500));  // Status: one attempt, then an answer
  broker_pool pool(broker, std::move(token));
  transit_key key(pool, opts->key);
  transit_key probe_key(probe_pool, opts->key);
  plugin_core core(key, probe_key);
  grpc_service service(core);

  if (!clear_socket_path(opts->listen)) {
    spdlog::error("--listen {}: a file that is not a socket is in the way, or it cannot be removed", opts->listen);
    return 1;
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + opts->listen, grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(64 * 1024);  // the apiserver sends a 32-byte key or a ciphertext under 1 kB
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server) {
    spdlog::error("cannot listen on {}", opts->listen);
    return 1;
  }
  auto first = core.status();  // not fatal: the broker may start after the plugin
  spdlog::info("serving KMS v2 on unix://{} with key \"{}\" of the broker at {} (healthz: {})", opts->listen, opts->key,
               opts->broker_socket, first.healthz);

  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("signal {}: stopping", sig);
    // Requests in flight finish (up to 5 s), then the server stops at once.
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (service.in_flight() > 0 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    server->Shutdown(std::chrono::system_clock::now());
  });
  server->Wait();
  stopper.join();
  ::unlink(opts->listen.c_str());
  return 0;
}
