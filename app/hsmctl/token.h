// hsmctl token: tokens for auth.tokens (README "Callers and policies"). Needs no broker.
#pragma once

#include <string>
#include <vector>

namespace hsmb::ctl {

// `args` after "token": "new NAME". Prints (as a JSON object with `json`) and returns the exit
// status (2 on bad usage).
int token_command(const std::vector<std::string>& args, bool json = false);

}  // namespace hsmb::ctl
