// What an HSM can do, in the broker's terms: capabilities worked out once from a token's
// mechanism list, and what each key type and each operation needs. Keeps CKM_ constants out of
// the broker, which reaches HSMs only through workers.
#pragma once

#include <bitset>
#include <cstdint>
#include <string_view>
#include <vector>

#include "hsm_backends/key_types.h"

namespace hsmb {

enum class capability : std::uint8_t {
  aes_key_gen, aes_gcm,
  ec_key_gen, ecdsa,
  edwards_key_gen, eddsa,
  rsa_key_gen, rsa_pkcs, rsa_pss,
  secret_key_gen, hmac_sha1, hmac_sha224, hmac_sha256, hmac_sha384, hmac_sha512,
  aes_key_wrap, aes_key_wrap_pad,
  hmac_sha3_224, hmac_sha3_256, hmac_sha3_384, hmac_sha3_512,
  sha3_224, sha3_256, sha3_384, sha3_512,  // digests: RSA-PSS names its hash to the HSM
  count
};
using capability_set = std::bitset<static_cast<std::size_t>(capability::count)>;

capability_set with(std::initializer_list<capability> caps);
// Every capability (a token that did not report its mechanisms is assumed to have them all).
capability_set all_capabilities();
capability_set capabilities_of(const std::vector<std::uint64_t>& mechanisms);

// To generate a key of `type` and use it (with its HMAC companion, which HMACs with SHA-256 at least).
capability_set needed_to_hold(key_type type);
// To copy a key of `type` between members (wrap and unwrap under the cluster key).
capability_set needed_to_copy(key_type type);
// Everything keys of `type` can be asked to do: a member offering all of it serves every request.
capability_set useful_for(key_type type);
capability_set needed_for_hmac(hash_alg hash);
// RSA-PSS with a SHA-3 hash needs that digest mechanism too (the others sign a digest the broker made).
capability_set needed_for_sign(sign_mechanism mech, hash_alg hash = hash_alg::sha256);
capability_set needed_for_cipher();
// "CKM_SHA224_HMAC, CKM_AES_GCM": for error messages.
std::string describe(const capability_set& caps);

}  // namespace hsmb
