// Temporary SoftHSM2 configurations and tokens for tests.
#include "tests/lib/softhsm_token.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

namespace hsmb::test {
namespace {

// Runs a program with SOFTHSM2_CONF set, without a shell, its output discarded unless it fails.
void run(const std::string& conf, std::vector<std::string> argv) {
  std::string log = conf + ".log";
  std::fflush(nullptr);  // or the child's freopen would write our buffered output a second time
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    setenv("SOFTHSM2_CONF", conf.c_str(), 1);
    if (FILE* f = std::freopen(log.c_str(), "w", stdout)) dup2(fileno(f), STDERR_FILENO);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ifstream in(log);
    std::string output((std::istreambuf_iterator<char>(in)), {});
    throw std::runtime_error(argv[0] + " failed: " + output);
  }
}

}  // namespace

softhsm_token::softhsm_token(std::string label, std::string pin, std::string so_pin)
    : label_(std::move(label)), pin_(std::move(pin)), so_pin_(std::move(so_pin)) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "hsmb-softhsm-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  conf_ = dir_ + "/softhsm2.conf";
  std::filesystem::create_directory(dir_ + "/tokens");
  std::ofstream(conf_) << "directories.tokendir = " << dir_ << "/tokens\n"
                       << "objectstore.backend = file\nlog.level = ERROR\n";
  try {
    add_token(label_);
  } catch (...) {
    std::filesystem::remove_all(dir_);
    throw;
  }
}

softhsm_token::~softhsm_token() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void softhsm_token::add_token(const std::string& label) {
  run(conf_, {"softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin_, "--so-pin", so_pin_});
}

void softhsm_token::use_conf() const { setenv("SOFTHSM2_CONF", conf_.c_str(), 1); }

}  // namespace hsmb::test
