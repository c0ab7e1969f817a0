// Test helper: a throw-away SoftHSM2 configuration with one or more initialised tokens.
#pragma once

#include <string>

namespace hsmb::test {

// Creates a fresh temporary directory holding softhsm2.conf and its token store, and initialises
// a token in it; the directory is removed on destruction. Every token shares the user PIN and SO
// PIN. Point SoftHSM at it with use_conf() (sets SOFTHSM2_CONF for this process and its children)
// before the module is initialised. Throws std::runtime_error when SoftHSM cannot be set up.
class softhsm_token {
 public:
  explicit softhsm_token(std::string label = "hsmb-test", std::string pin = "1234", std::string so_pin = "123456");
  ~softhsm_token();
  softhsm_token(const softhsm_token&) = delete;
  softhsm_token& operator=(const softhsm_token&) = delete;

  // Initialises one more token (same PINs) in the same configuration.
  void add_token(const std::string& label);
  // setenv("SOFTHSM2_CONF", conf_path()).
  void use_conf() const;

  const std::string& dir() const { return dir_; }
  const std::string& conf_path() const { return conf_; }
  const std::string& label() const { return label_; }  // the first token's label
  const std::string& pin() const { return pin_; }
  const std::string& so_pin() const { return so_pin_; }
  static std::string module_path() { return "/usr/lib/softhsm/libsofthsm2.so"; }

 private:
  std::string dir_, conf_, label_, pin_, so_pin_;
};

}  // namespace hsmb::test
