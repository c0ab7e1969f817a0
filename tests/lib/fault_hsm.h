// Test helper: a SoftHSM2 token reached through the fault-injection PKCS#11 module
// (libhsmb-fault-pkcs11.so), which the test switches between up, down and hung.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tests/lib/softhsm_token.h"

namespace hsmb::test {

// Owns a fresh SoftHSM2 token and the control file the fault module reads on every call. A process
// that loads module_path() with environment() set sees the token; down() makes it look unreachable
// (no slots, CKR_DEVICE_ERROR), hang() blocks its calls until up(). Destruction removes the control
// file with the token directory, which releases any call still hung. Throws std::runtime_error.
class fault_hsm {
 public:
  explicit fault_hsm(std::string label = "hsmb-fault");

  void up() { write_state("ok"); }
  void down() { write_state("down"); }
  void hang() { write_state("hang"); }
  // Answers every call, but each signature comes back wrong (a damaged token only a check catches).
  void bad_signatures() { write_state("badsig"); }
  // Key generation (C_GenerateKey, C_GenerateKeyPair) takes `ms` longer; everything else is normal.
  void slow_key_generation(long ms) { write_state("slowgen " + std::to_string(ms)); }
  // A remote HSM of a given capacity: each cryptographic call takes `us` microseconds of service
  // and at most `slots` are served at once in one process; the rest queue (bench/capacity.sh).
  void serve(long us, long slots) { write_state("serve " + std::to_string(us) + " " + std::to_string(slots)); }
  // C_Login takes `ms` longer: a fresh worker takes that long to start; everything else is normal.
  void slow_login(long ms) { write_state("slowlogin " + std::to_string(ms)); }

  // The fault-injection module to load instead of SoftHSM2.
  static std::string module_path();
  // SOFTHSM2_CONF, HSMB_FAULT_MODULE and HSMB_FAULT_CONTROL, for the process loading the module.
  std::vector<std::pair<std::string, std::string>> environment() const;

  softhsm_token& token() { return token_; }
  const softhsm_token& token() const { return token_; }
  const std::string& label() const { return token_.label(); }

 private:
  void write_state(const std::string& state);

  softhsm_token token_;
  std::string control_;
};

}  // namespace hsmb::test
