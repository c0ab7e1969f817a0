// The module's way to the broker: Transit requests over the Unix socket (HSM_BROKER_SOCKET), the
// caller's token when it has one, a pool of keep-alive connections, and retries within a deadline
// while the broker restarts, hands over or is momentarily unreachable.
#pragma once

#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "common/bytes.h"
#include "pkcs11_front/cryptoki.h"
#include "pkcs11_front/http_client.h"
#include "pkcs11_front/module_lock.h"

namespace hsmb::p11 {

// A broker answer: its status, parsed body (null when not JSON) and first error message.
struct answer {
  unsigned status = 0;
  boost::json::value body;
  std::string error;
  const boost::json::value* data() const;  // body["data"], nullptr when absent
};

struct link_settings {
  std::string socket = "/run/hsm-broker/broker.sock";
  secure_string token;                             // HSM_BROKER_TOKEN
  std::chrono::milliseconds deadline{15000};       // HSM_BROKER_TIMEOUT: a call, retries included
  static std::expected<link_settings, std::string> from_environment();
};

class broker_link {
 public:
  broker_link(link_settings s, module_lock& lock) : settings_(std::move(s)), lock_(lock) {}
  ~broker_link();

  // One request, retried (connect failures, closes before an answer, 429) until the deadline;
  // CKR_DEVICE_ERROR when the broker stays unreachable. `token` overrides HSM_BROKER_TOKEN.
  std::expected<answer, CK_RV> call(std::string_view method, std::string_view path, std::string_view json_body,
                                    const secure_string* token);
  // After fork(): the child drops its copies of the parent's connections without using them.
  void forget_after_fork();
  const std::string& last_error() const { return last_error_; }

 private:
  std::optional<connection> take_idle();
  void give_back(connection c);

  link_settings settings_;
  module_lock& lock_;
  std::vector<connection> idle_;  // under lock_
  std::string last_error_;
};

// Percent-encodes a key name for a URL path segment.
std::string path_segment(std::string_view name);

}  // namespace hsmb::p11
