// Routes as data: each route's methods, path pattern, the Vault capability it needs and who may
// call it, and the matcher that finds a request's route and its named path segments. No I/O and
// no Asio, so policy checks, audit and tests read the table without the server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hsmb::api {

// A set of HTTP methods, as bits. A method not named here (PATCH, "post") is in no set.
using method_set = std::uint8_t;
namespace methods {
inline constexpr method_set get = 1, head = 2, post = 4, put = 8, del = 16, list = 32;
inline constexpr method_set write = post | put;  // PUT is taken wherever POST is
}  // namespace methods
method_set method_bit(std::string_view method);  // 0 for a method in no set
std::string method_names(method_set set);        // "POST PUT"

// Vault's ACL capabilities, as a policy names them (`capabilities = ["update"]`); not to be
// confused with hsmb::capability, what an HSM can do.
enum class vault_capability { create, read, update, del, list, sudo };
std::string_view to_string(vault_capability c);

struct route_spec {
  std::string_view operation;  // what the route does ("encrypt"); its handler has this name
  method_set methods;          // LIST also takes GET with ?list=true, as Vault's clients send it
  std::string_view pattern;    // "/v1/transit/sign/:name/:hash_algorithm?"; see path_pattern
  vault_capability needs;
  bool admin;            // an operator's route (the broker's own state), not an application's
  bool unauthenticated;  // Vault answers it without a token
  bool json_body;        // a POST or PUT body is parsed as a JSON object before the handler runs
  bool changes_state;    // creates, changes or deletes a key or the broker's state (README "Audit")
  // The paths on which another method answers 405 rather than 404; empty: the pattern's.
  std::string_view method_scope;
};

// A request target: the path's segments (empty ones dropped: "//a/" is "/a") and the query.
struct target {
  std::vector<std::string_view> segments;
  std::string_view query;
};
target split_target(std::string_view t);
std::vector<std::string_view> split_path(std::string_view path);  // the segments alone, empty ones dropped
bool query_has(std::string_view query, std::string_view pair);  // pair ("list=true") among the &-separated ones

// The named segments a match bound; views into the request's target.
class path_params {
 public:
  std::string_view get(std::string_view name) const;  // empty when absent (an optional segment not sent)
  void add(std::string_view name, std::string_view value) { items_.emplace_back(name, value); }

 private:
  std::vector<std::pair<std::string_view, std::string_view>> items_;
};

// "/v1/transit/keys/:name": a literal segment matches itself, ":x" any one segment (bound as x),
// ":x?" one or none (only after the required ones), and a final "*" any number of segments.
class path_pattern {
 public:
  explicit path_pattern(std::string_view pattern);  // throws std::invalid_argument when malformed
  bool match(const std::vector<std::string_view>& segments, path_params* params = nullptr) const;

 private:
  enum class kind { literal, param, optional, rest };
  struct segment {
    kind k;
    std::string_view text;  // the literal, or the parameter's name
  };
  std::vector<segment> segments_;
};

struct route_match {
  enum kind { found, method_not_allowed, not_found } outcome = not_found;
  std::size_t index = 0;  // the route's position in the table, when found
  path_params params;
};

class route_table {
 public:
  explicit route_table(std::vector<route_spec> routes);  // throws std::invalid_argument on a bad pattern
  // The first route whose pattern and methods take the request. Otherwise 405 when the path is in
  // some route's method scope and none of those routes takes the method, else 404.
  route_match match(std::string_view method, const target& t) const;
  const std::vector<route_spec>& routes() const { return routes_; }

 private:
  struct compiled {
    path_pattern pattern, scope;
  };
  std::vector<route_spec> routes_;
  std::vector<compiled> compiled_;
};

}  // namespace hsmb::api
