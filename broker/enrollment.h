// `hsm-broker --enroll`: the cluster-key ceremony across the configured members. Makes the
// cluster key on one member if none has it, and carries it to every member that lacks it,
// wrapped under a transport key made on the receiving HSM. Needs each member's SO PIN, which is
// read for this command only and never by the serving broker.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "broker/config.h"
#include "common/bytes.h"

namespace hsmb {

struct so_pins {
  std::map<std::string, secure_string> by_member;
  std::optional<secure_string> for_all;  // when every member has the same SO PIN

  const secure_string* find(const std::string& member) const;
};

// Prints each step to stdout; returns the process exit code (0: every member holds the key).
int run_enrollment(const config& cfg, const std::string& worker_program, const so_pins& pins);

}  // namespace hsmb
