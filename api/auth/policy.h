// One caller's ACL with Vault's semantics: the rules of all its policies merged per path (a deny
// anywhere on a path leaves only deny), then the most specific rule that matches wins: an exact
// path, else Vault's priority among the '*' globs and '+' segment paths. Sans-I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "api/transit/route_table.h"
#include "broker/auth_config.h"

namespace hsmb::api {

std::uint8_t capability_bit(vault_capability c);

class acl {
 public:
  acl() = default;
  explicit acl(const std::vector<policy_rule>& rules);
  // The named policies' rules (each name must be in `policies`), plus `extra` (e.g. a default rule).
  acl(const std::vector<std::string>& names, const std::map<std::string, std::vector<policy_rule>>& policies,
      const std::vector<policy_rule>& extra = {});

  // The capability bits of the rule that governs `path` ("transit/encrypt/k"); 0 when none matches.
  std::uint8_t capabilities(std::string_view path) const;
  bool allows(std::string_view path, vault_capability needed) const;

 private:
  void add(const policy_rule& r);
  std::map<std::string, std::uint8_t, std::less<>> exact_;
  std::map<std::string, std::uint8_t, std::less<>> prefix_;   // "transit/*" stored as "transit/"
  std::map<std::string, std::uint8_t, std::less<>> segment_;  // paths with '+', as written
};

// The policy path of a request's segments: without a leading "v1" ("/v1/sys/health" → "sys/health").
std::string policy_path(const std::vector<std::string_view>& segments);

}  // namespace hsmb::api
