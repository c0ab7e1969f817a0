// A configuration that cannot be used; the message names the key path, e.g. "members[1].pin.file: ...".
#pragma once

#include <stdexcept>

namespace hsmb {

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace hsmb
