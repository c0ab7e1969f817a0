#include "api/auth/policy.h"

#include <optional>

namespace hsmb::api {
namespace {

std::vector<std::string_view> split_all(std::string_view s) {  // keeps empty parts, like Go's strings.Split
  std::vector<std::string_view> out;
  for (;;) {
    auto slash = s.find('/');
    out.push_back(s.substr(0, slash));
    if (slash == std::string_view::npos) return out;
    s.remove_prefix(slash + 1);
  }
}

// A non-exact rule that matched, with what Vault's priority order compares.
struct candidate {
  std::size_t first_wildcard;  // position of the first '+' or the '*'
  bool is_prefix;              // ends in '*'
  std::size_t wildcards;       // '+' segments
  std::string_view path;       // without the trailing '*'
  std::uint8_t caps;
};

// Vault's ACL priority (vault/acl.go): true when `a` yields to `b`.
bool lower(const candidate& a, const candidate& b) {
  if (a.first_wildcard != b.first_wildcard) return a.first_wildcard < b.first_wildcard;
  if (a.is_prefix != b.is_prefix) return a.is_prefix;
  if (a.wildcards != b.wildcards) return a.wildcards > b.wildcards;
  if (a.path.size() != b.path.size()) return a.path.size() < b.path.size();
  return a.path < b.path;
}

std::optional<candidate> match_segments(std::string_view rule, const std::vector<std::string_view>& parts,
                                        std::uint8_t caps) {
  candidate c{rule.find('+'), rule.ends_with('*'), 0, rule, caps};
  if (c.is_prefix) c.path.remove_suffix(1);
  auto rule_parts = split_all(c.path);
  if (parts.size() < rule_parts.size() || (!c.is_prefix && parts.size() != rule_parts.size())) return std::nullopt;
  for (std::size_t i = 0; i < rule_parts.size(); ++i) {
    bool last = i + 1 == rule_parts.size();
    if (rule_parts[i] == "+") {
      ++c.wildcards;
    } else if (rule_parts[i] != parts[i] && !(c.is_prefix && last && parts[i].starts_with(rule_parts[i]))) {
      return std::nullopt;
    }
  }
  return c;
}

void merge(std::map<std::string, std::uint8_t, std::less<>>& into, std::string key, std::uint8_t caps) {
  auto& have = into[std::move(key)];
  have |= caps;
  if (have & acl_bits::deny) have = acl_bits::deny;  // deny overrides every other capability on the path
}

}  // namespace

std::uint8_t capability_bit(vault_capability c) {
  switch (c) {
    case vault_capability::create: return acl_bits::create;
    case vault_capability::read: return acl_bits::read;
    case vault_capability::update: return acl_bits::update;
    case vault_capability::del: return acl_bits::del;
    case vault_capability::list: return acl_bits::list;
    case vault_capability::sudo: return acl_bits::sudo;
  }
  return 0;
}

acl::acl(const std::vector<policy_rule>& rules) {
  for (auto& r : rules) add(r);
}

acl::acl(const std::vector<std::string>& names, const std::map<std::string, std::vector<policy_rule>>& policies,
         const std::vector<policy_rule>& extra) {
  for (auto& name : names)
    if (auto it = policies.find(name); it != policies.end())
      for (auto& r : it->second) add(r);
  for (auto& r : extra) add(r);
}

void acl::add(const policy_rule& r) {
  if (r.path.find('+') != std::string::npos) merge(segment_, r.path, r.capabilities);
  else if (r.path.ends_with('*')) merge(prefix_, r.path.substr(0, r.path.size() - 1), r.capabilities);
  else merge(exact_, r.path, r.capabilities);
}

std::uint8_t acl::capabilities(std::string_view path) const {
  if (auto it = exact_.find(path); it != exact_.end()) return it->second;
  std::optional<candidate> best;
  auto consider = [&](const candidate& c) {
    if (!best || lower(*best, c)) best = c;
  };
  // The longest matching glob prefix is the only one Vault weighs against the '+' paths.
  const std::pair<const std::string, std::uint8_t>* longest = nullptr;
  for (auto& entry : prefix_)
    if (path.starts_with(entry.first) && (!longest || entry.first.size() > longest->first.size())) longest = &entry;
  if (longest) consider({longest->first.size(), true, 0, longest->first, longest->second});
  if (!segment_.empty()) {
    auto parts = split_all(path);
    for (auto& [rule, caps] : segment_)
      if (auto c = match_segments(rule, parts, caps)) consider(*c);
  }
  return best ? best->caps : 0;
}

bool acl::allows(std::string_view path, vault_capability needed) const {
  auto caps = capabilities(path);
  return (caps & acl_bits::deny) == 0 && (caps & capability_bit(needed)) != 0;
}

std::string policy_path(const std::vector<std::string_view>& segments) {
  std::string out;
  std::size_t start = !segments.empty() && segments[0] == "v1" ? 1 : 0;
  for (std::size_t i = start; i < segments.size(); ++i) {
    if (!out.empty()) out += '/';
    out += segments[i];
  }
  return out;
}

}  // namespace hsmb::api
