// SHA-256 for the audit trail's hot path: no allocation per hash, and HMAC-SHA256 from
// precomputed pad states (an EVP fetch, copy or init per call costs more than the hash of a line).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/bytes.h"

namespace hsmb::api::audit {

// hex SHA-256 of a ‖ b.
std::string sha256_hex(std::string_view a, std::string_view b);
void sha256_hex(char (&out)[64], std::string_view a, std::string_view b);  // the same, into out

class hmac_sha256 {
 public:
  explicit hmac_sha256(byte_view key);
  ~hmac_sha256();
  hmac_sha256(const hmac_sha256&) = delete;
  hmac_sha256& operator=(const hmac_sha256&) = delete;
  std::string hex(std::string_view data) const;
  void append_hex(std::string& out, std::string_view data) const;  // the same, appended to out

 private:
  struct states;
  std::unique_ptr<states> s_;
};

}  // namespace hsmb::api::audit
