// Test helper: simulated network HSMs. Each is a SoftHSM2 token served by `p11-kit server` on a
// Unix socket, reached through p11-kit-client.so, with real faults: SIGKILL (crash), SIGSTOP /
// SIGCONT (hang), and restart (recovery) of the server's whole process group.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/lib/broker_process.h"
#include "tests/lib/softhsm_token.h"

namespace hsmb::test {

class network_hsm {
 public:
  // Creates the token `label` in its own SoftHSM2 configuration and starts serving it.
  explicit network_hsm(std::string label);
  // A clone: a copy of `source`'s token store (same token label, same key objects), served on a
  // socket of its own, like a node of an HSM cluster cloned from another. `source` is stopped
  // while its files are copied, then served again.
  network_hsm(network_hsm& source, std::string name);
  ~network_hsm();
  network_hsm(const network_hsm&) = delete;
  network_hsm& operator=(const network_hsm&) = delete;

  void start();     // serve again (after kill); waits until the socket accepts connections
  void kill();      // SIGKILL the server and every p11-kit-remote it forked
  void stop();      // SIGSTOP them: calls hang
  void resume();    // SIGCONT
  bool running() const { return pgid_ > 0; }

  // How a broker member reaches this HSM.
  member_spec member(const std::string& name) const;
  const std::string& label() const { return label_; }  // the token's label
  const std::string& name() const { return name_; }    // the member name tests use
  const std::string& socket_path() const { return socket_; }
  const softhsm_token& token() const { return token_; }

 private:
  std::string label_, name_;
  softhsm_token token_;
  std::string socket_;
  pid_t pgid_ = -1;
};

// Several network HSMs: hsm1, hsm2, ... Without `provision`, each has its own token; with it, hsm1
// is provisioned first and the others are clones of it, so every member holds the same keys.
struct network_cluster {
  std::vector<std::unique_ptr<network_hsm>> hsms;
  explicit network_cluster(int n, std::function<void(network_hsm&)> provision = {});
  std::vector<member_spec> members() const;
  network_hsm& operator[](std::size_t i) { return *hsms[i]; }
};

inline const char* p11_kit_client_module() { return "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"; }

}  // namespace hsmb::test
