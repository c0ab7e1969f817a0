// The Transit key the plugin uses, through the broker: encrypt, decrypt, and its versions. HTTP
// statuses become failure kinds (400 invalid, 403 denied, 404 not found, 503 unavailable).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "kms_plugin/broker_pool.h"
#include "kms_plugin/failure.h"

namespace hsmb::kms {

// What GET /v1/transit/keys/:name says about the versions.
struct key_versions {
  std::string type;
  std::uint32_t latest = 0;
  std::uint32_t min_decryption = 0;
  std::map<std::uint32_t, std::int64_t> created;  // version -> unix seconds
};

class transit_key {
 public:
  transit_key(broker_pool& broker, std::string name);

  // The Transit ciphertext "vault:vN:...".
  result<std::string> encrypt(byte_view plaintext, clock::time_point deadline,
                              broker_pool::on_unavailable policy = broker_pool::on_unavailable::retry);
  result<secure_bytes> decrypt(std::string_view ciphertext, clock::time_point deadline);
  result<key_versions> read(clock::time_point deadline);
  const std::string& name() const { return name_; }

 private:
  broker_pool& broker_;
  std::string name_;
};

// Key names the broker accepts: 1..128 of [A-Za-z0-9_.-], not starting with '.'.
bool valid_key_name(std::string_view name);

}  // namespace hsmb::kms
