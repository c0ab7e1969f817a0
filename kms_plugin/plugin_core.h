// What the KMS v2 service does, free of gRPC: Status (a real encrypt of a probe, cached briefly),
// Encrypt with the key's latest version, Decrypt of any version this key has had, each answered
// with the version's key_id. The key_id table is re-read from the broker when a version is new.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "kms_plugin/failure.h"
#include "kms_plugin/transit_key.h"

namespace hsmb::kms {

struct status_report {
  std::string healthz;  // "ok", or why not
  std::string key_id;   // the latest version's; the last one known while unhealthy
};

struct encrypted {
  std::string ciphertext;
  std::string key_id;
};

// Larger plaintexts would make ciphertexts over the apiserver's 1 kB limit.
inline constexpr std::size_t max_plaintext = 512;

class plugin_core {
 public:
  // `probe_key`: the same key through connections with a short attempt timeout, so Status answers
  // within the apiserver's timeout even when the broker hangs.
  plugin_core(transit_key& key, transit_key& probe_key, std::chrono::milliseconds health_ttl = std::chrono::seconds(1));

  status_report status();
  result<encrypted> encrypt(byte_view plaintext, clock::time_point deadline);
  result<secure_bytes> decrypt(std::string_view ciphertext, std::string_view key_id, clock::time_point deadline);

 private:
  // The key_id of `version`; re-reads the key's versions when it is not known yet. `from_broker`:
  // the broker just used this version, so it exists (no spacing between re-reads).
  result<std::string> key_id_of(std::uint32_t version, clock::time_point deadline, bool from_broker);
  result<void> refresh(clock::time_point deadline);
  // A real encrypt with the key: the latest version's key_id, or why it failed.
  result<std::string> probe(clock::time_point deadline);

  transit_key& key_;
  transit_key& probe_key_;
  std::chrono::milliseconds health_ttl_;

  std::mutex ids_mu_;
  std::map<std::uint32_t, std::string> ids_;  // version -> key_id
  std::mutex refresh_mu_;                      // one re-read at a time
  clock::time_point refreshed_at_{};

  std::mutex health_mu_;  // held during a probe: concurrent Status calls share its answer
  clock::time_point health_at_{};
  status_report health_{};
};

}  // namespace hsmb::kms
