// The worker requests the key service sends most often, built in one line each; sent with
// typed_call, which checks each against its op (hsm_backends/wire/protocol.h).
#pragma once

#include <string>

#include "broker/keys/metadata.h"
#include "broker/typed_call.h"
#include "hsm_backends/wire/protocol.h"

namespace hsmb {

inline wire::label_request label_request(std::string label) { return {std::move(label)}; }

inline wire::put_metadata_request metadata_request(std::string_view name, const key_metadata& meta) {
  return {std::string(name), encode_metadata(meta)};
}

// A create/rotate claim record: its value is the claim's time (unix seconds), so a claim left by
// a broker that died can be recognised as stale.
inline wire::put_metadata_request claim_request(std::string_view record, std::int64_t unix_seconds) {
  auto text = std::to_string(unix_seconds);
  auto value = as_bytes(std::string_view(text));
  return {std::string(record), bytes(value.begin(), value.end())};
}

}  // namespace hsmb
