// Worker request payloads the key service sends most often, built in one line each.
#pragma once

#include <string>

#include "broker/keys/metadata.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb {

inline bytes payload_of_label(std::string_view label) {
  bytes b;
  wire::encode_label(b, label);
  return b;
}

inline bytes payload_of_record(std::string_view name, const key_metadata& meta) {
  bytes b;
  wire::encode_put_metadata(b, name, encode_metadata(meta));
  return b;
}

// A create/rotate claim record: its value is the claim's time (unix seconds), so a claim left by
// a broker that died can be recognised as stale.
inline bytes payload_of_claim(std::string_view record, std::int64_t unix_seconds) {
  auto text = std::to_string(unix_seconds);
  bytes b;
  wire::encode_put_metadata(b, record, as_bytes(std::string_view(text)));
  return b;
}

}  // namespace hsmb
