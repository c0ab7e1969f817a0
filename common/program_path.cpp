#include "common/program_path.h"

#include <filesystem>

namespace hsmb {

std::string program_beside_self(std::string_view name) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / name).string();
}

}  // namespace hsmb
