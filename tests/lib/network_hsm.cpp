#include "tests/lib/network_hsm.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace hsmb::test {

namespace {

bool accepts(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

network_hsm::network_hsm(std::string label) : label_(label), name_(label), token_(label) {
  socket_ = token_.dir() + "/p11kit.sock";
  start();
}

network_hsm::network_hsm(network_hsm& source, std::string name)
    : label_(source.label_), name_(std::move(name)), token_(name_ + "-unused", source.token_.pin(), source.token_.so_pin()) {
  socket_ = token_.dir() + "/p11kit.sock";
  bool was_running = source.running();
  source.kill();
  namespace fs = std::filesystem;
  fs::remove_all(token_.dir() + "/tokens");
  fs::copy(source.token_.dir() + "/tokens", token_.dir() + "/tokens", fs::copy_options::recursive);
  if (was_running) source.start();
  start();
}

network_hsm::~network_hsm() {
  if (pgid_ > 0) {
    ::kill(-pgid_, SIGCONT);
    kill();
  }
}

void network_hsm::start() {
  if (pgid_ > 0) throw std::logic_error("network HSM " + label_ + " is already running");
  std::filesystem::remove(socket_);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();  // its own process group: faults reach the server and every p11-kit-remote
    // Its output goes to a log, never to the test's pipes (its children would hold them open).
    int log = ::open((token_.dir() + "/p11kit.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::close_range(3, ~0U, 0);
    ::setenv("SOFTHSM2_CONF", token_.conf_path().c_str(), 1);
    std::string uri = "pkcs11:token=" + label_;
    ::execlp("p11-kit", "p11-kit", "server", "-f", "-n", socket_.c_str(), "--provider",
             softhsm_token::module_path().c_str(), uri.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pgid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!accepts(socket_)) {
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("p11-kit server for " + label_ + " did not start");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the socket has no readiness signal
  }
}

void network_hsm::kill() {
  if (pgid_ <= 0) return;
  ::kill(-pgid_, SIGKILL);
  int status;
  ::waitpid(pgid_, &status, 0);
  pgid_ = -1;
}

void network_hsm::stop() {
  if (pgid_ > 0) ::kill(-pgid_, SIGSTOP);
}

void network_hsm::resume() {
  if (pgid_ > 0) ::kill(-pgid_, SIGCONT);
}

member_spec network_hsm::member(const std::string& name) const {
  return member_spec{name, p11_kit_client_module(), label_, token_.pin(),
                     {{"P11_KIT_SERVER_ADDRESS", "unix:path=" + socket_}}};
}

network_cluster::network_cluster(int n, std::function<void(network_hsm&)> provision) {
  hsms.push_back(std::make_unique<network_hsm>("hsm1"));
  if (provision) provision(*hsms[0]);
  for (int i = 2; i <= n; ++i) {
    auto name = "hsm" + std::to_string(i);
    hsms.push_back(provision ? std::make_unique<network_hsm>(*hsms[0], name) : std::make_unique<network_hsm>(name));
  }
}

std::vector<member_spec> network_cluster::members() const {
  std::vector<member_spec> out;
  for (auto& h : hsms) out.push_back(h->member(h->name()));
  return out;
}

}  // namespace hsmb::test
