// SoftHSM2 tokens behind the fault-injection PKCS#11 module, for tests of failing HSMs.
#include "tests/lib/fault_hsm.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace hsmb::test {

fault_hsm::fault_hsm(std::string label) : token_(std::move(label)), control_(token_.dir() + "/fault-control") {
  up();
}

std::string fault_hsm::module_path() { return HSMB_FAULT_MODULE_PATH; }

std::vector<std::pair<std::string, std::string>> fault_hsm::environment() const {
  return {{"SOFTHSM2_CONF", token_.conf_path()},
          {"HSMB_FAULT_MODULE", softhsm_token::module_path()},
          {"HSMB_FAULT_CONTROL", control_}};
}

// Write-then-rename, so the module never reads a half-written state.
void fault_hsm::write_state(const std::string& state) {
  std::string tmp = control_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << state << '\n';
    out.close();
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, control_);
}

}  // namespace hsmb::test
