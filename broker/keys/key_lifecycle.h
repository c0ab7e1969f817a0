// Key management: create, read, rotate, configure, delete. Each change is made under the admin
// lock and a cross-broker claim, on the HSMs first and in the catalog last.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/keys/name_claims.h"
#include "broker/keys/replicator.h"

namespace hsmb {

struct create_options {
  key_type type = key_type::aes256_gcm96;
  std::int64_t auto_rotate_period = 0;  // seconds; 0: off
};

struct config_change {
  std::optional<std::uint32_t> min_decryption_version;
  std::optional<std::uint32_t> min_encryption_version;
  std::optional<bool> deletion_allowed;
  std::optional<std::int64_t> auto_rotate_period;  // seconds; 0: off
};

class key_lifecycle {
 public:
  key_lifecycle(key_context& ctx, key_directory& directory, copy_checks& checks, replicator& replication,
                name_claims& claims)
      : ctx_(ctx), directory_(directory), checks_(checks), replication_(replication), claims_(claims) {}

  boost::asio::awaitable<broker_result<key_entry>> create_key(const std::string& name, create_options opts);
  boost::asio::awaitable<broker_result<key_entry>> read_key(std::string_view name);
  boost::asio::awaitable<broker_result<key_entry>> rotate_key(const std::string& name);
  boost::asio::awaitable<broker_result<key_entry>> configure_key(const std::string& name, config_change change);
  boost::asio::awaitable<broker_result<void>> delete_key(const std::string& name);
  // The fleet's auto-rotation: rotates `name` only if its auto_rotate_period has passed by the
  // record the cross-broker claim reads, so of brokers sharing the HSMs exactly one rotates per
  // period. True when this call made a version.
  boost::asio::awaitable<broker_result<bool>> rotate_if_due(const std::string& name);
  // Stores a version's certificate chain (checked by the caller) in the key's record on the HSMs.
  boost::asio::awaitable<broker_result<key_entry>> set_certificate_chain(const std::string& name, std::uint32_t version,
                                                                         std::string chain_pem);

 private:
  boost::asio::awaitable<broker_result<key_entry>> create_claimed(const std::string& name, create_options opts);
  boost::asio::awaitable<broker_result<key_entry>> rotate_claimed(const std::string& name);
  broker_result<void> check_rotate_period(std::int64_t period) const;
  std::vector<member*> generation_candidates(key_type type, const key_entry* existing);
  std::uint32_t required_copies(key_type type) const;
  boost::asio::awaitable<broker_result<public_key_blob>> generate(member& m, const std::string& label, key_type type);
  struct generated {
    member* on;
    public_key_blob blob;
  };
  // Generates on the first of `candidates` that manages it: a member failure moves on.
  boost::asio::awaitable<broker_result<generated>> generate_on_any(std::vector<member*> candidates,
                                                                   const std::string& label, key_type type);

  key_context& ctx_;
  key_directory& directory_;
  copy_checks& checks_;
  replicator& replication_;
  name_claims& claims_;
};

}  // namespace hsmb
