// An auth.tokens entry for a test broker's YAML: the token's SHA-256, as the config holds it.
#pragma once

#include <string>

#include "api/auth/authenticator.h"

namespace hsmb::test {

// `extra`: more of the entry's fields, e.g. ", rate: { per_second: 1, burst: 3 }".
inline std::string token_binding(const std::string& name, const std::string& token, const std::string& policies,
                                 const std::string& extra = "") {
  return "    - { name: " + name + ", sha256: \"" + api::sha256_hex(token) + "\", policies: [" + policies + "]" + extra + " }\n";
}

}  // namespace hsmb::test
