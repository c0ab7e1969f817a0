// Inside a fake token (tests/lib/fake_worker.h): shared by the token and its workers.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>

#include "tests/lib/fake_worker.h"

namespace hsmb::test {

// Which records one worker process knows of, when the token shows them as SoftHSM2's file store
// does (fake_token::per_process_views): re-read on a find only if the generation moved since.
struct process_view {
  std::optional<std::uint64_t> indexed_at;  // the generation last seen; none before the first find
                                            // (SoftHSM2 reads at C_Initialize: the same to a check)
  std::set<std::string> known;
};

struct fake_token::state {
  struct rule {
    fake_step step;
    int left;  // calls it still applies to; -1: every call
  };

  std::string label;
  token_description description;
  std::map<wire::op, std::deque<rule>> rules;
  std::map<wire::op, std::function<hsm_result<bytes>(byte_view)>> handlers;
  std::map<wire::op, std::size_t> calls;
  std::size_t started = 0, alive = 0;
  bool wrong = false;
  std::vector<metadata_record> records;
  std::map<std::string, std::shared_ptr<EVP_PKEY>> keys;  // by label; null for secret keys
  std::vector<std::function<void()>> hung;  // answers each hung call that is still waiting

  bool per_process = false;
  std::uint64_t generation = 1;  // bumped by every record created or deleted

  // What the next call of `op` does (and uses up a scripted rule).
  fake_step next(wire::op op);
  // The answer of a call that is answered, worked out when it is delivered.
  hsm_result<bytes> answer(wire::op op, byte_view payload);
  // The same, as seen by the worker with `view` (records are looked up, listed and written).
  hsm_result<bytes> answer(wire::op op, byte_view payload, process_view& view);
  // A find: a view re-reads the record names if the generation moved since it last looked.
  void index(process_view& view) const;
  std::vector<metadata_record>::iterator find_record(const std::string& name);

 private:
  hsm_result<bytes> generate(byte_view payload);
  hsm_result<bytes> public_key(byte_view payload);
  hsm_result<bytes> sign(byte_view payload);
  hsm_result<bytes> check_value(byte_view payload);
  hsm_result<bytes> destroy(byte_view payload);
  hsm_result<bytes> put_record(byte_view payload);
  hsm_result<bytes> delete_record(byte_view payload);
};

}  // namespace hsmb::test
