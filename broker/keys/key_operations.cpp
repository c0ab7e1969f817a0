#include "broker/keys/key_operations.h"

#include <openssl/crypto.h>

#include "broker/keys/signature.h"
#include "broker/keys/versioned_value.h"
#include "hsm_backends/wire/protocol.h"

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// One routed operation, typed by the protocol table: the request is encoded into wiping memory
// when it holds a secret, and a secret reply's raw bytes are wiped once decoded. Every operation
// routed here (encrypt, decrypt, sign, hmac, random) is safe to send twice, so it may be hedged.
template <wire::op O>
awaitable<broker_result<wire::reply_of<O>>> execute(member_pool& pool, const wire::request_of<O>& request,
                                                    const member_filter& eligible) {
  auto payload = wire::encode_request<O>(request);
  auto raw = co_await pool.execute(O, payload, eligible, repeatable::yes);
  if (!raw) co_return std::unexpected(raw.error());
  auto reply = wire::take_reply<O>(*raw);
  if (!reply) co_return internal("malformed reply from worker");
  co_return std::move(*reply);
}

std::string key_and_version(std::string_view name, std::uint32_t version) {
  auto key = "key \"" + std::string(name) + "\"";
  return version ? "version " + std::to_string(version) + " of " + key : key;
}

broker_result<std::uint32_t> encryption_version(const key_metadata& m, std::optional<std::uint32_t> requested) {
  std::uint32_t v = requested.value_or(m.latest_version);
  if (v == 0) v = m.latest_version;
  if (v > m.latest_version) return invalid_input("requested version " + std::to_string(v) + " is newer than the latest version");
  if (m.min_encryption_version != 0 && v < m.min_encryption_version)
    return invalid_input("requested version " + std::to_string(v) + " is below the key's min_encryption_version");
  if (v < m.min_decryption_version)
    return invalid_input("requested version " + std::to_string(v) + " is below the key's min_decryption_version");
  return v;
}

broker_result<void> check_decryption_version(const key_metadata& m, std::uint32_t v) {
  if (v > m.latest_version) return invalid_input("invalid key version " + std::to_string(v));
  if (v < m.min_decryption_version) return invalid_input("ciphertext or signature version is disallowed by policy (too old)");
  return {};
}

sign_mechanism mechanism_for(key_type t, const sign_options& o) {
  if (is_ecdsa(t)) return sign_mechanism::ecdsa;
  if (t == key_type::ed25519) return sign_mechanism::eddsa;
  return o.pkcs1v15 ? sign_mechanism::rsa_pkcs1v15 : sign_mechanism::rsa_pss;
}

// The PSS salt the HSM is asked for: Vault's auto is the largest the key and hash allow.
broker_result<std::uint32_t> pss_salt(key_type t, const sign_options& o) {
  if (!is_rsa(t) || o.pkcs1v15) return pss_salt_hash_length;  // not used
  auto max = max_pss_salt(t, o.hash);
  if (o.salt == pss_salt_auto) return static_cast<std::uint32_t>(max);
  if (o.salt == pss_salt_hash_length) return o.salt;
  if (o.salt > max)
    return invalid_input("salt_length " + std::to_string(o.salt) + " is too long for " + std::string(to_string(t)) +
                         " with " + std::string(to_string(o.hash)) + ": at most " + std::to_string(max));
  return o.salt;
}

// What the HSM signs (and the broker verifies): the message for Ed25519, a digest otherwise.
broker_result<bytes> signing_input(key_type t, byte_view input, const sign_options& o) {
  if (t == key_type::ed25519) {
    if (o.prehashed) return invalid_input("ed25519 keys sign the message itself; prehashed is not supported");
    return bytes(input.begin(), input.end());
  }
  if (o.hash == hash_alg::none) {
    if (!(is_rsa(t) && o.pkcs1v15)) return invalid_input("hash_algorithm none is only allowed with rsa keys and pkcs1v15");
    if (input.size() > rsa_modulus_bytes(t) - 11)  // PKCS#1 v1.5 padding needs 11 bytes
      return invalid_input("input too long for this key: at most " + std::to_string(rsa_modulus_bytes(t) - 11) + " bytes");
    return bytes(input.begin(), input.end());
  }
  if (o.prehashed) {
    if (input.size() != digest_size(o.hash))
      return invalid_input("prehashed input must be " + std::to_string(digest_size(o.hash)) + " bytes for " +
                           std::string(to_string(o.hash)));
    return bytes(input.begin(), input.end());
  }
  auto d = compute_digest(o.hash, input);
  if (!d) return internal("digest computation failed");
  return *d;
}

}  // namespace

template <wire::op O>
awaitable<broker_result<wire::reply_of<O>>> key_operations::on_holders(const key_entry& key, std::uint32_t version,
                                                                       const wire::request_of<O>& request,
                                                                       const capability_set& needed) {
  // Decided now, per member: the entry may change while this request waits.
  std::vector<bool> usable(key.held_up_to.size());
  bool held = false, offered = false;
  for (std::size_t i = 0; i < usable.size(); ++i) {
    bool holds = ctx_.mode == replication_mode::none ? !key.copy_differs(i, version) : key.usable_on(i, version);
    // A member that lacks the mechanism (p11-kit 0.24 carries no CKM_SHA224_HMAC) is never asked.
    usable[i] = holds && ctx_.pool.at(i).offers(needed);
    held |= holds;
    offered |= usable[i];
  }
  if (held && !offered)
    co_return invalid_input("no member holding " + key_and_version(key.name, version) + " offers " + describe(needed));
  member_filter holds = [usable = std::move(usable), type = key.meta.type](const member& m) {
    return usable[m.index()] && m.supports(type);
  };
  co_return co_await execute<O>(ctx_.pool, request, holds);
}

awaitable<broker_result<versioned_output>> key_operations::encrypt(std::string_view name, byte_view plaintext, byte_view aad,
                                                             std::optional<std::uint32_t> version) {
  auto found = co_await directory_.lookup(name, version.value_or(0));
  if (!found) co_return std::unexpected(found.error());
  auto& key = **found;
  if (!is_symmetric_cipher(key.meta.type))
    co_return invalid_input("key type " + std::string(to_string(key.meta.type)) + " does not support encryption");
  auto v = encryption_version(key.meta, version);
  if (!v) co_return std::unexpected(v.error());
  wire::cipher_request request{key_object_label(name, *v), secure_bytes(plaintext.begin(), plaintext.end()),
                               bytes(aad.begin(), aad.end())};
  auto sealed = co_await on_holders<wire::op::encrypt>(key, *v, request, needed_for_cipher());
  if (!sealed) co_return std::unexpected(sealed.error());
  co_return versioned_output{format_versioned(*v, sealed->value), *v};
}

awaitable<broker_result<secure_bytes>> key_operations::decrypt(std::string_view name, std::string_view ciphertext, byte_view aad) {
  auto parsed = parse_versioned(ciphertext);
  auto found = co_await directory_.lookup(name, parsed ? parsed->version : 0);
  if (!found) co_return std::unexpected(found.error());
  auto& key = **found;
  if (!is_symmetric_cipher(key.meta.type))
    co_return invalid_input("key type " + std::string(to_string(key.meta.type)) + " does not support decryption");
  if (!parsed) co_return invalid_input("invalid ciphertext: expected vault:v<version>:<base64>");
  if (auto ok = check_decryption_version(key.meta, parsed->version); !ok) co_return std::unexpected(ok.error());
  if (parsed->value.size() < 12 + 16) co_return invalid_input("invalid ciphertext: too short");
  wire::cipher_request request{key_object_label(name, parsed->version),
                               secure_bytes(parsed->value.begin(), parsed->value.end()), bytes(aad.begin(), aad.end())};
  auto plain = co_await on_holders<wire::op::decrypt>(key, parsed->version, request, needed_for_cipher());
  if (!plain) co_return std::unexpected(plain.error());
  co_return std::move(plain->value);
}

awaitable<broker_result<versioned_output>> key_operations::rewrap(std::string_view name, std::string_view ciphertext,
                                                            byte_view aad, std::optional<std::uint32_t> version) {
  auto plain = co_await decrypt(name, ciphertext, aad);
  if (!plain) co_return std::unexpected(plain.error());
  co_return co_await encrypt(name, *plain, aad, version);
}

awaitable<broker_result<versioned_output>> key_operations::sign(std::string_view name, byte_view input, sign_options opts) {
  auto found = co_await directory_.lookup(name, opts.key_version.value_or(0));
  if (!found) co_return std::unexpected(found.error());
  auto& key = **found;
  auto type = key.meta.type;
  if (!is_asymmetric(type)) co_return invalid_input("key type " + std::string(to_string(type)) + " does not support signing");
  auto v = encryption_version(key.meta, opts.key_version);
  if (!v) co_return std::unexpected(v.error());
  auto tbs = signing_input(type, input, opts);
  if (!tbs) co_return std::unexpected(tbs.error());
  auto mech = mechanism_for(type, opts);
  auto salt = pss_salt(type, opts);
  if (!salt) co_return std::unexpected(salt.error());
  wire::sign_request request{key_object_label(name, *v), mech, opts.hash, std::move(*tbs), *salt};
  auto reply = co_await on_holders<wire::op::sign>(key, *v, request, needed_for_sign(mech, opts.hash));
  if (!reply) co_return std::unexpected(reply.error());
  std::optional<bytes> sig = std::move(reply->value);
  if (mech == sign_mechanism::ecdsa && !opts.jws) {
    sig = ecdsa_raw_to_der(*sig);
    if (!sig) co_return internal("the HSM returned a malformed ECDSA signature");
  }
  co_return versioned_output{format_versioned(*v, *sig, opts.jws ? value_encoding::base64url : value_encoding::base64), *v};
}

awaitable<broker_result<bool>> key_operations::verify(std::string_view name, byte_view input, std::string_view signature,
                                                sign_options opts) {
  auto parsed = parse_versioned(signature, opts.jws ? value_encoding::base64url : value_encoding::base64);
  auto found = co_await directory_.lookup(name, parsed ? parsed->version : 0);
  if (!found) co_return std::unexpected(found.error());
  auto& key = **found;
  auto type = key.meta.type;
  if (!is_asymmetric(type)) co_return invalid_input("key type " + std::string(to_string(type)) + " does not support verification");
  if (!parsed) co_return invalid_input("invalid signature: expected vault:v<version>:<base64>");
  if (auto ok = check_decryption_version(key.meta, parsed->version); !ok) co_return std::unexpected(ok.error());
  auto pk = key.public_keys.find(parsed->version);
  if (pk == key.public_keys.end())
    co_return unavailable("public key of version " + std::to_string(parsed->version) + " is not available");
  auto tbs = signing_input(type, input, opts);
  if (!tbs) co_return std::unexpected(tbs.error());
  bytes sig(parsed->value.begin(), parsed->value.end());
  auto mech = mechanism_for(type, opts);
  if (mech == sign_mechanism::ecdsa && opts.jws) {
    auto der = sig.size() == 2 * ecdsa_field_bytes(type) ? ecdsa_raw_to_der(sig) : std::nullopt;
    if (!der) co_return false;
    sig = std::move(*der);
  }
  if (mech == sign_mechanism::rsa_pss && opts.salt != pss_salt_auto)
    if (auto salt = pss_salt(type, opts); !salt) co_return std::unexpected(salt.error());
  co_return verify_signature(pk->second, type, opts.hash, mech, *tbs, sig, opts.salt);
}

awaitable<broker_result<versioned_output>> key_operations::hmac(std::string_view name, byte_view input, hash_alg hash,
                                                          std::optional<std::uint32_t> version) {
  auto found = co_await directory_.lookup(name, version.value_or(0));
  if (!found) co_return std::unexpected(found.error());
  auto& key = **found;
  if (hash == hash_alg::none) co_return invalid_input("unsupported hmac algorithm");
  auto v = encryption_version(key.meta, version);
  if (!v) co_return std::unexpected(v.error());
  wire::hmac_request request{hmac_object_label(name, *v, key.meta.type), hash, secure_bytes(input.begin(), input.end())};
  auto mac = co_await on_holders<wire::op::hmac>(key, *v, request, needed_for_hmac(hash));
  if (!mac) co_return std::unexpected(mac.error());
  co_return versioned_output{format_versioned(*v, mac->value), *v};
}

awaitable<broker_result<bool>> key_operations::verify_hmac(std::string_view name, byte_view input, std::string_view hmac_text,
                                                     hash_alg hash) {
  auto parsed = parse_versioned(hmac_text);
  if (!parsed) co_return invalid_input("invalid hmac: expected vault:v<version>:<base64>");
  auto found = co_await directory_.lookup(name, parsed->version);
  if (!found) co_return std::unexpected(found.error());
  if (auto ok = check_decryption_version((*found)->meta, parsed->version); !ok) co_return std::unexpected(ok.error());
  auto expected = co_await hmac(name, input, hash, parsed->version);
  if (!expected) co_return std::unexpected(expected.error());
  auto mine = parse_versioned(expected->text);
  co_return mine && mine->value.size() == parsed->value.size() &&
      CRYPTO_memcmp(mine->value.data(), parsed->value.data(), mine->value.size()) == 0;
}

awaitable<broker_result<secure_bytes>> key_operations::random(std::size_t n) {
  wire::random_request request{static_cast<std::uint32_t>(n)};
  member_filter any = [](const member&) { return true; };
  auto out = co_await execute<wire::op::random>(ctx_.pool, request, any);
  if (!out) co_return std::unexpected(out.error());
  if (out->value.size() != n) co_return internal("malformed reply from worker");
  co_return std::move(out->value);
}

awaitable<broker_result<data_key>> key_operations::datakey(std::string_view name, std::uint32_t bits) {
  if (bits != 128 && bits != 256 && bits != 512) co_return invalid_input("bits must be 128, 256 or 512");
  auto found = co_await directory_.lookup(name);
  if (!found) co_return std::unexpected(found.error());
  auto plain = co_await random(bits / 8);
  if (!plain) co_return std::unexpected(plain.error());
  auto sealed = co_await encrypt(name, *plain, {}, std::nullopt);
  if (!sealed) co_return std::unexpected(sealed.error());
  co_return data_key{std::move(*plain), std::move(*sealed)};
}

}  // namespace hsmb
