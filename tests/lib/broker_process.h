// Test helper: runs a real hsm-broker process on a temporary Unix socket and a free loopback
// port, waits for its READY (sd_notify on a test NOTIFY_SOCKET), and stops it on destruction.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "api/client/broker_client.h"
#include "common/service_env.h"

namespace hsmb::test {

struct member_spec {
  std::string name;
  std::string module;
  std::string token_label;
  std::string pin;
  std::map<std::string, std::string> env;
  bool pin_from_env = false;  // config says pin: { env: HSMB_PIN_<name> } and the broker gets that variable
};

class broker_process {
 public:
  // `extra_yaml` is appended to the generated config (timeouts:, health:, ...).
  explicit broker_process(std::vector<member_spec> members, std::string extra_yaml = "");
  ~broker_process();
  broker_process(const broker_process&) = delete;
  broker_process& operator=(const broker_process&) = delete;

  // Run hsm-supervisor (which runs hsm-broker generations) instead of hsm-broker itself.
  void use_supervisor() { program_ = "hsm-supervisor"; }
  // An environment variable for the process (set before start()).
  void set_env(const std::string& name, const std::string& value) { child_env_[name] = value; }
  // Socket activation: pass these listening fds as 3.. with LISTEN_FDS / LISTEN_FDNAMES / LISTEN_PID.
  void pass_sockets(std::vector<hsmb::passed_socket> fds) { passed_ = std::move(fds); }

  // Starts the process and waits for READY; throws with the log's tail when it does not come.
  void start(std::chrono::seconds timeout = std::chrono::seconds(20));
  // Every sd_notify datagram received so far (READY=1, STATUS=..., WATCHDOG=1, ...).
  std::vector<std::string> notifications();
  // Waits until a datagram containing `text` arrives (or has arrived); false on timeout.
  bool await_notification(const std::string& text, std::chrono::milliseconds timeout);
  void signal(int sig) const;
  bool running();  // false once the process has exited (reaps it)
  // SIGTERM and wait for exit; returns the exit status (as from waitpid).
  int stop(std::chrono::seconds timeout = std::chrono::seconds(15));

  client::broker_client unix_client() const;
  client::broker_client tcp_client() const;
  const std::string& socket_path() const { return socket_path_; }
  std::uint16_t http_port() const { return port_; }
  const std::string& dir() const { return dir_; }
  const std::string& config_path() const { return config_path_; }
  pid_t pid() const { return pid_; }
  // Direct children: the member workers of a broker, the broker generations of a supervisor.
  std::vector<pid_t> worker_pids() const;
  std::string log_tail(std::size_t bytes = 4000) const;

 private:
  void drain_notifications(int wait_ms);
  std::string program_ = "hsm-broker";
  std::vector<hsmb::passed_socket> passed_;
  std::vector<std::string> notes_;
  std::string dir_, socket_path_, config_path_, log_path_, notify_path_;
  std::map<std::string, std::string> child_env_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  int notify_fd_ = -1;
};

// Picks a loopback TCP port that is free right now.
std::uint16_t free_tcp_port();
// Runs a shell command; returns its exit status and fills `output` with stdout+stderr.
int run_command(const std::string& command, std::string* output = nullptr);

}  // namespace hsmb::test
