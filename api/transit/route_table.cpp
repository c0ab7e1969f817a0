#include "api/transit/route_table.h"

#include <stdexcept>

namespace hsmb::api {

namespace {

constexpr std::pair<std::string_view, method_set> method_bits[] = {
    {"GET", methods::get},   {"HEAD", methods::head},  {"POST", methods::post},
    {"PUT", methods::put},   {"DELETE", methods::del}, {"LIST", methods::list},
};

bool accepts(const route_spec& r, method_set m, bool listing) {
  return (r.methods & m) != 0 || (listing && (r.methods & methods::list) != 0);
}

}  // namespace

method_set method_bit(std::string_view method) {
  for (auto& [name, bit] : method_bits)
    if (name == method) return bit;
  return 0;
}

std::string method_names(method_set set) {
  std::string out;
  for (auto& [name, bit] : method_bits) {
    if ((set & bit) == 0) continue;
    if (!out.empty()) out += ' ';
    out += name;
  }
  return out;
}

std::string_view to_string(vault_capability c) {
  switch (c) {
    case vault_capability::create: return "create";
    case vault_capability::read: return "read";
    case vault_capability::update: return "update";
    case vault_capability::del: return "delete";
    case vault_capability::list: return "list";
    case vault_capability::sudo: return "sudo";
  }
  return "?";
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    auto slash = path.find('/');
    auto seg = path.substr(0, slash);
    if (!seg.empty()) out.push_back(seg);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

target split_target(std::string_view t) {
  auto q = t.find('?');
  if (q == std::string_view::npos) return {split_path(t), {}};
  return {split_path(t.substr(0, q)), t.substr(q + 1)};
}

bool query_has(std::string_view query, std::string_view pair) {
  while (!query.empty()) {
    auto amp = query.find('&');
    if (query.substr(0, amp) == pair) return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

std::string_view path_params::get(std::string_view name) const {
  for (auto& [n, v] : items_)
    if (n == name) return v;
  return {};
}

path_pattern::path_pattern(std::string_view pattern) {
  auto bad = [&](const char* why) { return std::invalid_argument("route pattern " + std::string(pattern) + ": " + why); };
  if (!pattern.starts_with('/')) throw bad("must start with /");
  for (auto seg : split_path(pattern)) {
    if (!segments_.empty() && segments_.back().k == kind::rest) throw bad("* must be the last segment");
    if (seg == "*") {
      segments_.push_back({kind::rest, seg});
    } else if (seg.starts_with(':') && seg.ends_with('?') && seg.size() > 2) {
      segments_.push_back({kind::optional, seg.substr(1, seg.size() - 2)});
    } else if (seg.starts_with(':') && seg.size() > 1) {
      if (!segments_.empty() && segments_.back().k == kind::optional) throw bad("a required segment after an optional one");
      segments_.push_back({kind::param, seg.substr(1)});
    } else if (seg.find_first_of(":?*") != std::string_view::npos) {
      throw bad("a literal segment with :, ? or *");
    } else {
      if (!segments_.empty() && segments_.back().k == kind::optional) throw bad("a literal after an optional segment");
      segments_.push_back({kind::literal, seg});
    }
  }
}

bool path_pattern::match(const std::vector<std::string_view>& path, path_params* params) const {
  std::size_t i = 0;
  for (auto& seg : segments_) {
    if (seg.k == kind::rest) return true;
    if (i == path.size()) {
      if (seg.k == kind::optional) continue;
      return false;
    }
    if (seg.k == kind::literal && path[i] != seg.text) return false;
    if (seg.k != kind::literal && params) params->add(seg.text, path[i]);
    ++i;
  }
  return i == path.size();
}

route_table::route_table(std::vector<route_spec> routes) : routes_(std::move(routes)) {
  for (auto& r : routes_)
    compiled_.push_back({path_pattern(r.pattern), path_pattern(r.method_scope.empty() ? r.pattern : r.method_scope)});
}

route_match route_table::match(std::string_view method, const target& t) const {
  auto m = method_bit(method);
  bool listing = m == methods::get && query_has(t.query, "list=true");
  bool in_scope = false, scope_takes_method = false;
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    path_params params;
    if (accepts(routes_[i], m, listing) && compiled_[i].pattern.match(t.segments, &params))
      return {route_match::found, i, std::move(params)};
    if (compiled_[i].scope.match(t.segments)) {
      in_scope = true;
      scope_takes_method = scope_takes_method || accepts(routes_[i], m, listing);
    }
  }
  return {in_scope && !scope_takes_method ? route_match::method_not_allowed : route_match::not_found, 0, {}};
}

}  // namespace hsmb::api
