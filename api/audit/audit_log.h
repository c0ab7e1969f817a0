// The audit trail (README "Audit"): for every request a "request" line before it is served and a
// "response" line after, in Vault's audit schema, sharing request.id; secrets redacted
// (redaction.h) under the audit key; lines chained (chain.h) in a file (file_sink.h).
// fail_closed: a request whose line cannot be written, or that arrives before the audit key is
// known, gets 503 and is not served; otherwise it is served and the failure logged.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "api/audit/audit_key.h"
#include "api/audit/file_sink.h"
#include "api/audit/group_commit.h"
#include "api/auth/caller.h"
#include "api/http/request.h"

namespace boost::json {
class object;
}

namespace hsmb::api::audit {

inline constexpr std::uint64_t no_queued_line = ~std::uint64_t{0};

// What both lines of one request say about it.
struct ticket {
  std::string subject;  // `"auth":{…},"request":{…}` (request.id among them), as JSON text
  // Lines that had failed when the request line was queued without waiting; no_queued_line if
  // it was waited for.
  std::uint64_t failed_before = no_queued_line;
};

// What the trail did since the broker started (/metrics). One thread runs the routes.
struct audit_counters {
  std::uint64_t lines = 0;     // lines written
  std::uint64_t failures = 0;  // lines that could not be written
  std::uint64_t refused = 0;   // requests answered 503 by fail_closed (unwritable, or no audit key yet)
};

class audit_log {
 public:
  audit_log(std::string file, bool fail_closed) : sink_(std::move(file)), commit_(sink_), fail_closed_(fail_closed) {}

  audit_key& key() { return key_; }
  const audit_key& key() const { return key_; }
  void reopen() { sink_.reopen(); }
  const audit_counters& counters();

  // Writes the request line. `operation`: Vault's (create, read, update, delete, list).
  // `body`: the request's body as the route parsed it, if it did (else it is parsed here).
  // `side_effects`: the request may change something (a key, the broker's state), so it is not
  // served before its request line is in the file. Otherwise it is served at once: its answer
  // waits in finish() for both lines, so nothing is released unaudited either way.
  // `token`: the one the request presented, if any, written as auth.client_token's hash.
  // Without a value: serve the request; with one: answer it instead (503, fail_closed).
  boost::asio::awaitable<std::optional<response>> begin(const request& req, const caller& who,
                                                        std::string_view operation, ticket& t,
                                                        const boost::json::object* body = nullptr,
                                                        bool side_effects = true, std::string_view token = {});
  // Writes the response line; returns what to answer (503 when fail_closed and it failed).
  boost::asio::awaitable<response> finish(const ticket& t, response answer);

 private:
  boost::asio::awaitable<bool> write(std::string body);  // false: not written (logged)
  response refuse(std::string_view why);                  // 503, counted

  audit_key key_;
  file_sink sink_;
  group_commit commit_;
  bool fail_closed_;
  audit_counters counters_;
};

// The Vault operation a method stands for, where no route says.
std::string_view operation_of(std::string_view method, std::string_view target);

}  // namespace hsmb::api::audit
