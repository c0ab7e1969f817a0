// hsm-broker's programs are installed side by side: each finds the others next to itself.
#pragma once

#include <string>
#include <string_view>

namespace hsmb {

// The path of `name` in the directory of the running executable.
std::string program_beside_self(std::string_view name);

}  // namespace hsmb
