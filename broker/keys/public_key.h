// Public halves of asymmetric keys, built from what the HSM returns: PEM for the API and an
// OpenSSL key so signatures are verified in the broker without a round trip to an HSM.
#pragma once

#include <openssl/types.h>

#include <memory>
#include <optional>
#include <string>

#include "hsm_backends/backend.h"

namespace hsmb {

struct public_key {
  std::shared_ptr<EVP_PKEY> pkey;
  std::string pem;
  std::string name;  // "P-256", "P-384", "ed25519", "rsa-2048", ...
};

std::optional<public_key> make_public_key(const public_key_blob& blob, key_type type);
// SHA-256 of the SubjectPublicKeyInfo (DER): names a key pair across members.
bytes public_key_fingerprint(const public_key& key);

}  // namespace hsmb
