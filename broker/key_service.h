// The Transit operations (keys, encrypt, decrypt, sign, verify, hmac, random, data keys) in
// terms of the key catalog and the member pool. No JSON or HTTP here: see api/transit.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/error.h"
#include "common/coro/async_mutex.h"
#include "broker/keys/catalog.h"
#include "common/coro/wake_list.h"
#include "broker/member_pool.h"

namespace hsmb {

struct create_options {
  key_type type = key_type::aes256_gcm96;
};

struct config_change {
  std::optional<std::uint32_t> min_decryption_version;
  std::optional<std::uint32_t> min_encryption_version;
  std::optional<bool> deletion_allowed;
};

struct sign_options {
  hash_alg hash = hash_alg::sha256;
  bool prehashed = false;
  bool pkcs1v15 = false;  // RSA padding; PSS otherwise (Vault's default)
  bool jws = false;       // marshaling_algorithm=jws: r||s for ECDSA, base64url
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

// Where the copies of one key version are, and whether they are the same key.
struct copy_state {
  std::string member;
  std::string fingerprint;  // hex; empty when missing or not checked
  std::string problem;      // "missing", "member down", or the member's error
};

struct version_sync {
  std::uint32_t version = 0;
  std::string status;  // "ok", "missing" (some serving member lacks it), "mismatch", "unchecked"
  std::vector<copy_state> copies;
};

struct key_sync {
  std::string name;
  key_type type;
  std::vector<version_sync> versions;
};

class key_service {
 public:
  // With replication_mode::none the HSMs synchronise keys themselves (CloudHSM, Luna HA groups):
  // every member is assumed to hold every key, and the broker only routes.
  key_service(boost::asio::io_context& io, member_pool& pool, replication_mode mode = replication_mode::broker,
              std::uint32_t min_copies = 1);

  // Hooks into every member's join (syncing state): loads what it holds and, with replication,
  // copies to it what it missed (and from it what the others miss) before it serves.
  void attach();
  // Copies every missing key version and metadata record to every member that can take it.
  boost::asio::awaitable<void> reconcile();
  // reconcile(), having first looked at what each member really holds: a copy that went missing
  // from a token (a member's record still claims it) is copied again.
  boost::asio::awaitable<void> repair();
  // Whether every member's records have been read, or the member was found down by a real
  // attempt: what a broker must know before it takes traffic (README: Never a false "key not found").
  // `attempts`: how many failed attempts in a row make a member count as found down.
  bool ready(int attempts = 1) const { return pool_.settled(attempts); }

  boost::asio::awaitable<broker_result<key_entry>> create_key(const std::string& name, create_options opts);
  boost::asio::awaitable<broker_result<key_entry>> read_key(std::string_view name);
  std::vector<std::string> list_keys() const { return catalog_.names(); }
  boost::asio::awaitable<broker_result<key_entry>> rotate_key(const std::string& name);
  boost::asio::awaitable<broker_result<key_entry>> configure_key(const std::string& name, config_change change);
  boost::asio::awaitable<broker_result<void>> delete_key(const std::string& name);

  boost::asio::awaitable<broker_result<versioned_output>> encrypt(std::string_view name, byte_view plaintext, byte_view aad,
                                                               std::optional<std::uint32_t> version);
  boost::asio::awaitable<broker_result<secure_bytes>> decrypt(std::string_view name, std::string_view ciphertext,
                                                           byte_view aad);
  boost::asio::awaitable<broker_result<versioned_output>> rewrap(std::string_view name, std::string_view ciphertext,
                                                              byte_view aad, std::optional<std::uint32_t> version);
  boost::asio::awaitable<broker_result<versioned_output>> sign(std::string_view name, byte_view input, sign_options opts);
  boost::asio::awaitable<broker_result<bool>> verify(std::string_view name, byte_view input, std::string_view signature,
                                                  sign_options opts);
  boost::asio::awaitable<broker_result<versioned_output>> hmac(std::string_view name, byte_view input, hash_alg hash,
                                                            std::optional<std::uint32_t> version);
  boost::asio::awaitable<broker_result<bool>> verify_hmac(std::string_view name, byte_view input, std::string_view hmac,
                                                       hash_alg hash);
  boost::asio::awaitable<broker_result<secure_bytes>> random(std::size_t n);
  boost::asio::awaitable<broker_result<data_key>> datakey(std::string_view name, std::uint32_t bits);
  // The drift report: every key version on every member, with fingerprints.
  boost::asio::awaitable<std::vector<key_sync>> sync_report();

 private:
  boost::asio::awaitable<bool> join(member& m);
  boost::asio::awaitable<bool> load_from(member& m);  // false: could not list what it holds
  boost::asio::awaitable<void> fetch_public_keys(member& m, const std::string& name);
  // Member `m`'s metadata records (keys, tombstones, claims); nullopt when it cannot say.
  boost::asio::awaitable<std::optional<std::vector<metadata_record>>> list_records(member& m);
  // Merges `m`'s key records (only the one named `only`, if given) and fetches new public keys;
  // when `m` is joining, also reports damaged records and checks its copies. Returns how many
  // records it merged.
  boost::asio::awaitable<std::size_t> merge_records(member& m, const std::vector<metadata_record>& records,
                                                    std::string_view only = {}, bool joining = false);
  bool replicates() const { return mode_ == replication_mode::broker && pool_.size() > 1; }

  // ---- replication (key_replication.cpp) ----
  // Copies version `v` of `key` (and its HMAC companion) from one member to another, and checks
  // the copy against the recorded fingerprint. An existing identical copy counts as copied.
  boost::asio::awaitable<hsm_result<void>> copy_version(member& from, member& to, const key_entry& key, std::uint32_t v);
  // Copies a version just made on `made_on` to every other serving member that holds the versions
  // before it; returns the members that now hold it, `made_on` first.
  boost::asio::awaitable<std::vector<std::size_t>> spread(const key_entry& key, member& made_on, std::uint32_t v);
  // Brings member `m` up to date for one key: missing versions, then its metadata record.
  // false when `m` cannot take copies now (not enrolled, or a device error), so the caller stops
  // trying for this pass.
  boost::asio::awaitable<bool> reconcile_key(const std::string& name, member& m);
  boost::asio::awaitable<void> reconcile_member(member& m);
  // Removes copies of a deleted key of this name from a member that was away (see the .cpp);
  // false when the member could not be asked.
  boost::asio::awaitable<bool> drop_stale_copies(const std::string& name, member& m);
  // Lowers m's holdings to below the first version its token turns out not to hold.
  boost::asio::awaitable<void> forget_missing_copies(member& m);
  boost::asio::awaitable<void> discard(const std::vector<std::size_t>& holders, const std::string& prefix);
  // Two brokers (a hand-off, or sidecars sharing HSMs) must not change one key at once: a lock
  // record on the first member that is not down, then that member's copy of the key's record is
  // merged.
  struct name_claim {
    member* arbiter = nullptr;
    std::string record;
  };
  boost::asio::awaitable<broker_result<name_claim>> claim(const std::string& name);
  boost::asio::awaitable<void> release(const name_claim& c);
  struct claim_view {
    std::vector<metadata_record> records;
    bool contended = false;  // someone else's live claim on the name is there
  };
  boost::asio::awaitable<std::optional<claim_view>> contended(member& arbiter, const std::string& name,
                                                              const std::string& mine);
  boost::asio::awaitable<broker_result<key_entry>> create_claimed(const std::string& name, create_options opts);
  boost::asio::awaitable<broker_result<key_entry>> rotate_claimed(const std::string& name);
  // Writes `key`'s metadata to each of `targets`; answers those that took it, fails if none did.
  boost::asio::awaitable<broker_result<std::vector<std::size_t>>> store_metadata_on(const key_entry& key,
                                                                                 const std::vector<std::size_t>& targets);
  std::vector<member*> generation_candidates(key_type type, const key_entry* existing);
  std::uint32_t required_copies(key_type type) const;
  boost::asio::awaitable<copy_state> inspect_copy(member& m, const std::string& name, std::uint32_t version, key_type type);
  // The key, or why not: 404 only when every member's records have been read (members not read
  // yet may hold it: 503 naming them).
  broker_result<key_entry*> existing(std::string_view name);
  // existing(), but an unknown key, or a version newer than the known latest, first re-reads every
  // serving member's records (another broker may have made it), then waits within the request
  // deadline for members whose records are not read yet.
  boost::asio::awaitable<broker_result<key_entry*>> lookup(std::string_view name, std::uint32_t version = 0);
  // Members whose records this broker has never read (none once one was read, with replication:
  // none, where every member holds every key).
  std::vector<member*> unread() const;
  // "hsm3 (down: no token labelled 'hsm3'), hsm2 (starting)"
  std::string describe_unread() const;
  broker_error absent(std::string_view name, std::uint32_t version = 0) const;
  // Waits until no unread member is starting, syncing or restarting, or until `deadline`.
  boost::asio::awaitable<void> wait_for_unread(std::chrono::steady_clock::time_point deadline);
  // Returns once a re-read of the members that began at or after `asked` has finished, or at
  // `deadline`. However many requests ask, re-reads begin at most every refresh_spacing.
  boost::asio::awaitable<void> refresh_since(std::chrono::steady_clock::time_point asked,
                                             std::chrono::steady_clock::time_point deadline);
  boost::asio::awaitable<void> refresh();
  // The members a key change is written to: its holders, or (replication: none) the first
  // serving member, since the HSM cluster copies it to the others.
  std::vector<std::size_t> write_targets(const key_entry& key) const;
  // Sends the operation to a member that holds `version` and offers `needed` (its mechanisms).
  boost::asio::awaitable<broker_result<bytes>> on_holders(const key_entry& key, std::uint32_t version, wire::op op,
                                                       const bytes& payload, const capability_set& needed);
  // Records the new version's fingerprint (from the member that made it) in `key`'s metadata.
  boost::asio::awaitable<void> record_fingerprint(key_entry& key, member& made_on, std::uint32_t version);
  // Compares a joining member's copies with the recorded fingerprints; mismatches are not used.
  boost::asio::awaitable<void> check_copies(member& m, const std::string& name);
  // What comparing m's copy of name/version with the recorded fingerprint found: remembered, so
  // it is not compared again, and a copy that differs is not used.
  void note_copy(const member& m, const std::string& name, std::uint32_t version, const std::string& expected,
                 bool matches);
  boost::asio::awaitable<broker_result<public_key_blob>> generate(member& m, const std::string& label, key_type type);
  struct generated {
    member* on;
    public_key_blob blob;
  };
  // Generates on the first of `candidates` that manages it: a member failure moves on.
  boost::asio::awaitable<broker_result<generated>> generate_on_any(std::vector<member*> candidates, const std::string& label,
                                                                key_type type);

  boost::asio::io_context& io_;
  member_pool& pool_;
  replication_mode mode_;
  std::uint32_t min_copies_;
  key_catalog catalog_;
  // Per member: copies found to be the recorded key (name, version, fingerprint). With the
  // fingerprint: a name deleted and made again is a different key, whose copies are unchecked.
  std::vector<std::set<std::tuple<std::string, std::uint32_t, std::string>>> checked_;
  async_mutex admin_;
  std::vector<bool> read_;  // by member index: its records were read at least once
  // Re-reads of the members for names or versions not known (refresh_since).
  bool refreshing_ = false;
  std::chrono::steady_clock::time_point refresh_began_{};       // the running or last re-read
  std::chrono::steady_clock::time_point refreshed_since_{};     // when the last finished one began
  wake_list refresh_waiters_;  // woken when a re-read ends
  std::map<std::string, std::chrono::steady_clock::time_point, std::less<>> absent_at_;  // 404s, for absent_memory
};

}  // namespace hsmb
