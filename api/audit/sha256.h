// SHA-256 for the audit trail's hot path: the digest fetched from OpenSSL once (an implicit
// fetch per call costs microseconds per line), and HMAC-SHA256 from precomputed pad states.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/bytes.h"

namespace hsmb::api::audit {

// hex SHA-256 of a ‖ b.
std::string sha256_hex(std::string_view a, std::string_view b);

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
