// The Transit operations on a key (encrypt, decrypt, rewrap, sign, verify, hmac, data keys) and
// random bytes: each goes to a member that holds the version and offers the mechanism.
#pragma once

#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "broker/keys/key_directory.h"
#include "hsm_backends/wire/protocol.h"

namespace hsmb {

struct sign_options {
  hash_alg hash = hash_alg::sha256;
  bool prehashed = false;
  bool pkcs1v15 = false;  // RSA padding; PSS otherwise (Vault's default)
  bool jws = false;       // marshaling_algorithm=jws: r||s for ECDSA, base64url
  std::uint32_t salt = pss_salt_auto;  // RSA-PSS salt length: bytes, pss_salt_auto or pss_salt_hash_length
  std::optional<std::uint32_t> key_version;
};

struct versioned_output {
  std::string text;  // vault:v<N>:...
  std::uint32_t version = 0;
};

struct data_key {
  secure_bytes plaintext;
  versioned_output ciphertext;
};

class key_operations {
 public:
  key_operations(key_context& ctx, key_directory& directory) : ctx_(ctx), directory_(directory) {}

  boost::asio::awaitable<broker_result<versioned_output>> encrypt(std::string_view name, byte_view plaintext,
                                                                  byte_view aad, std::optional<std::uint32_t> version);
  boost::asio::awaitable<broker_result<secure_bytes>> decrypt(std::string_view name, std::string_view ciphertext,
                                                              byte_view aad);
  boost::asio::awaitable<broker_result<versioned_output>> rewrap(std::string_view name, std::string_view ciphertext,
                                                                 byte_view aad, std::optional<std::uint32_t> version);
  boost::asio::awaitable<broker_result<versioned_output>> sign(std::string_view name, byte_view input, sign_options opts);
  boost::asio::awaitable<broker_result<bool>> verify(std::string_view name, byte_view input, std::string_view signature,
                                                     sign_options opts);
  boost::asio::awaitable<broker_result<versioned_output>> hmac(std::string_view name, byte_view input, hash_alg hash,
                                                               std::optional<std::uint32_t> version);
  boost::asio::awaitable<broker_result<bool>> verify_hmac(std::string_view name, byte_view input,
                                                          std::string_view hmac, hash_alg hash);
  boost::asio::awaitable<broker_result<secure_bytes>> random(std::size_t n);
  boost::asio::awaitable<broker_result<data_key>> datakey(std::string_view name, std::uint32_t bits);

 private:
  // Sends the operation to a member that holds `version` and offers `needed` (its mechanisms).
  template <wire::op O>
  boost::asio::awaitable<broker_result<wire::reply_of<O>>> on_holders(const key_entry& key, std::uint32_t version,
                                                                      const wire::request_of<O>& request,
                                                                      const capability_set& needed);

  key_context& ctx_;
  key_directory& directory_;
};

}  // namespace hsmb
