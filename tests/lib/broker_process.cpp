#include "tests/lib/broker_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef HSMB_BIN_DIR
#error "HSMB_BIN_DIR must point at build/bin"
#endif

namespace hsmb::test {
namespace fs = std::filesystem;

std::uint16_t free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot find a free port");
  ::close(fd);
  return ntohs(a.sin_port);
}

int run_command(const std::string& command, std::string* output) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::string out;
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

broker_process::broker_process(std::vector<member_spec> members, std::string extra_yaml) {
  char tmpl[] = "/tmp/hsmb-it-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  socket_path_ = dir_ + "/broker.sock";
  config_path_ = dir_ + "/broker.yaml";
  log_path_ = dir_ + "/broker.log";
  notify_path_ = dir_ + "/notify.sock";
  port_ = free_tcp_port();
  std::ofstream cfg(config_path_);
  cfg << "state_dir: " << dir_ << "/state\n"
      << "listen:\n  unix: { path: " << socket_path_ << ", mode: \"0600\" }\n"
      << "  http: { address: \"127.0.0.1:" << port_ << "\" }\n"
      << "members:\n";
  for (auto& m : members) {
    cfg << "  - name: " << m.name << "\n    module: " << m.module << "\n    token_label: " << m.token_label << "\n";
    if (m.pin_from_env) {
      std::string var = "HSMB_PIN_" + m.name;
      for (auto& c : var) c = c == '-' ? '_' : c;
      child_env_[var] = m.pin;
      cfg << "    pin: { env: " << var << " }\n";
    } else {
      cfg << "    pin: { value: \"" << m.pin << "\" }\n";
    }
    cfg << "    sessions: 2\n";
    if (!m.env.empty()) {
      cfg << "    env:\n";
      for (auto& [k, v] : m.env) cfg << "      " << k << ": " << v << "\n";
    }
  }
  cfg << extra_yaml << "\n";
}

broker_process::~broker_process() {
  if (pid_ > 0) stop();
  if (notify_fd_ >= 0) ::close(notify_fd_);
  std::error_code ec;
  if (!std::getenv("HSMB_KEEP_TEST_DIRS")) fs::remove_all(dir_, ec);
}

void broker_process::start(std::chrono::seconds timeout) {
  if (notify_fd_ < 0) {
    notify_fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, notify_path_.c_str(), sizeof a.sun_path - 1);
    if (::bind(notify_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("cannot bind notify socket");
  }
  // HSMB_TEST_BIN_DIR runs the suite against other builds of the programs (a deliberately broken
  // one, to see that a test catches what it is meant to).
  const char* bin_dir = std::getenv("HSMB_TEST_BIN_DIR");
  std::string program = std::string(bin_dir && *bin_dir ? bin_dir : HSMB_BIN_DIR) + "/" + program_;
  pid_ = ::fork();
  if (pid_ == 0) {
    int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(log, 1);
    ::dup2(log, 2);
    hsmb::give_listen_fds(passed_);  // and no test pipe or socket leaks in
    ::setenv("NOTIFY_SOCKET", notify_path_.c_str(), 1);
    for (auto& [k, v] : child_env_) ::setenv(k.c_str(), v.c_str(), 1);
    ::execl(program.c_str(), program.c_str(), "--config", config_path_.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("broker did not report READY within the timeout; log:\n" + log_tail());
    pollfd p{notify_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 200))) > 0) {
      char buf[512];
      auto n = ::recv(notify_fd_, buf, sizeof buf, 0);
      if (n > 0) notes_.emplace_back(buf, static_cast<std::size_t>(n));
      if (n > 0 && notes_.back().find("READY=1") != std::string::npos) return;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("broker exited during start-up; log:\n" + log_tail());
    }
  }
}

int broker_process::stop(std::chrono::seconds timeout) {
  if (pid_ <= 0) return 0;
  ::kill(pid_, SIGTERM);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // waitpid has no timeout
  }
  pid_ = -1;
  return status;
}

void broker_process::drain_notifications(int wait_ms) {
  pollfd p{notify_fd_, POLLIN, 0};
  while (notify_fd_ >= 0 && ::poll(&p, 1, wait_ms) > 0) {
    char buf[512];
    auto n = ::recv(notify_fd_, buf, sizeof buf, 0);
    if (n <= 0) break;
    notes_.emplace_back(buf, static_cast<std::size_t>(n));
    wait_ms = 0;
  }
}

std::vector<std::string> broker_process::notifications() {
  drain_notifications(0);
  return notes_;
}

bool broker_process::await_notification(const std::string& text, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (std::size_t seen = 0;;) {
    for (; seen < notes_.size(); ++seen)
      if (notes_[seen].find(text) != std::string::npos) return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    drain_notifications(static_cast<int>(std::min<long>(left.count(), 100)));
  }
}

void broker_process::signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

bool broker_process::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) pid_ = -1;
  return pid_ > 0;
}

client::broker_client broker_process::unix_client() const {
  client::endpoint ep;
  ep.unix_path = socket_path_;
  return client::broker_client(ep, std::chrono::seconds(20));
}

client::broker_client broker_process::tcp_client() const {
  client::endpoint ep;
  ep.host = "127.0.0.1";
  ep.port = port_;
  return client::broker_client(ep, std::chrono::seconds(20));
}

std::vector<pid_t> broker_process::worker_pids() const {
  std::vector<pid_t> out;
  if (pid_ <= 0) return out;
  std::error_code ec;
  for (auto& task : fs::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    pid_t p;
    while (in >> p) out.push_back(p);
  }
  return out;
}

std::string broker_process::log_tail(std::size_t bytes) const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  auto s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

}  // namespace hsmb::test
