#include "broker/auth_config.h"

#include <grp.h>
#include <pwd.h>

#include <cctype>
#include <regex>
#include <set>

#include "common/yaml_node.h"

namespace hsmb {
namespace {

std::uint8_t capability_bit(const node_at& at) {
  static const std::map<std::string, std::uint8_t> names = {
      {"create", acl_bits::create}, {"read", acl_bits::read}, {"update", acl_bits::update},
      {"delete", acl_bits::del},    {"list", acl_bits::list}, {"sudo", acl_bits::sudo},
      {"deny", acl_bits::deny}};
  auto s = at.text();
  auto it = names.find(s);
  if (it == names.end()) at.fail("unknown capability \"" + s + "\" (create, read, update, delete, list, sudo, deny)");
  return it->second;
}

policy_rule load_rule(const node_at& at) {
  at.expect_map({"path", "capabilities"});
  policy_rule r;
  r.path = at.child("path").text();
  if (r.path.starts_with('/')) at.child("path").fail("write the API path without a leading / or /v1/");
  if (auto star = r.path.find('*'); star != std::string::npos && star + 1 != r.path.size())
    at.child("path").fail("'*' may only end the path");
  auto caps = at.child("capabilities");
  if (!caps.present()) caps.fail("required");
  std::size_t n = caps.expect_sequence();
  if (n == 0) caps.fail("give at least one capability");
  for (std::size_t i = 0; i < n; ++i) r.capabilities |= capability_bit(caps.item(i));
  return r;
}

std::map<std::string, std::vector<policy_rule>> load_policies(const node_at& at) {
  std::map<std::string, std::vector<policy_rule>> out;
  if (!at.present()) return out;
  if (!at.raw().IsMap()) at.fail("expected a mapping of policy names to lists of rules");
  static const std::regex name_re("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}");
  for (auto it = at.raw().begin(); it != at.raw().end(); ++it) {
    auto name = it->first.as<std::string>();
    auto p = at.child(name);
    if (!std::regex_match(name, name_re)) p.fail("use letters, digits, '.', '_' or '-' (at most 63)");
    std::size_t n = p.expect_sequence();
    auto& rules = out[name];
    for (std::size_t i = 0; i < n; ++i) rules.push_back(load_rule(p.item(i)));
  }
  return out;
}

void load_binding(const node_at& at, binding& b) {
  auto p = at.child("policies");
  if (!p.present()) p.fail("required (a list of policy names; [] for none)");
  std::size_t n = p.expect_sequence();
  for (std::size_t i = 0; i < n; ++i) b.policies.push_back(p.item(i).nonempty_text());
  if (auto r = at.child("rate"); r.present()) {
    r.expect_map({"per_second", "burst"});
    rate_limit limit;
    if (!r.child("per_second").present()) r.child("per_second").fail("required");
    limit.per_second = static_cast<double>(r.child("per_second").number(1, 1'000'000));
    limit.burst = static_cast<std::uint32_t>(limit.per_second);
    if (auto burst = r.child("burst"); burst.present()) limit.burst = static_cast<std::uint32_t>(burst.number(1, 1'000'000));
    b.rate = limit;
  }
}

token_binding load_token(const node_at& at) {
  at.expect_map({"name", "sha256", "policies", "rate"});
  token_binding t;
  t.name = at.child("name").nonempty_text();
  t.sha256 = at.child("sha256").nonempty_text();
  static const std::regex hex_re("[0-9a-fA-F]{64}");
  if (!std::regex_match(t.sha256, hex_re)) at.child("sha256").fail("expected 64 hex digits (hsmctl token new NAME prints them)");
  for (auto& c : t.sha256) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  load_binding(at, t);
  return t;
}

unix_binding load_unix(const node_at& at) {
  at.expect_map({"uid", "user", "gid", "group", "unit", "policies", "rate"});
  unix_binding u;
  if (at.child("uid").present() && at.child("user").present()) at.fail("give uid or user, not both");
  if (at.child("gid").present() && at.child("group").present()) at.fail("give gid or group, not both");
  std::vector<std::string> label;
  if (auto n = at.child("uid"); n.present()) {
    u.uid = static_cast<uid_t>(n.number(0, 0xfffffffeu));
    label.push_back("uid-" + std::to_string(*u.uid));
  }
  if (auto n = at.child("user"); n.present()) {
    auto name = n.nonempty_text();
    const passwd* pw = ::getpwnam(name.c_str());  // start-up only: the single-threaded config load
    if (!pw) n.fail("no such user \"" + name + "\"");
    u.uid = pw->pw_uid;
    label.push_back("user-" + name);
  }
  if (auto n = at.child("gid"); n.present()) {
    u.gid = static_cast<gid_t>(n.number(0, 0xfffffffeu));
    label.push_back("gid-" + std::to_string(*u.gid));
  }
  if (auto n = at.child("group"); n.present()) {
    auto name = n.nonempty_text();
    const group* gr = ::getgrnam(name.c_str());
    if (!gr) n.fail("no such group \"" + name + "\"");
    u.gid = gr->gr_gid;
    label.push_back("group-" + name);
  }
  if (auto n = at.child("unit"); n.present()) {
    u.unit = n.nonempty_text();
    if (!u.unit.ends_with(".service") || u.unit.find('/') != std::string::npos) n.fail("expected a unit name, NAME.service");
    label.push_back("unit-" + u.unit);
  }
  if (label.empty()) at.fail("give at least one of uid, user, gid, group or unit");
  for (auto& l : label) u.label += (u.label.empty() ? "" : "-") + l;
  load_binding(at, u);
  return u;
}

cert_binding load_cert(const node_at& at) {
  at.expect_map({"uri_san", "subject_cn", "policies", "rate"});
  cert_binding c;
  if (at.child("uri_san").present() == at.child("subject_cn").present()) at.fail("give exactly one of uri_san or subject_cn");
  if (auto s = at.child("uri_san"); s.present()) c.uri_san = s.nonempty_text();
  if (auto s = at.child("subject_cn"); s.present()) c.subject_cn = s.nonempty_text();
  load_binding(at, c);
  return c;
}

template <class T, class F>
std::vector<T> load_list(const node_at& at, F load) {
  std::vector<T> out;
  if (!at.present()) return out;
  std::size_t n = at.expect_sequence();
  for (std::size_t i = 0; i < n; ++i) out.push_back(load(at.item(i)));
  return out;
}

// Every policy a binding names exists: a typo would otherwise silently grant nothing.
void check_policy_names(const node_at& list, const std::vector<const binding*>& bindings,
                        const std::map<std::string, std::vector<policy_rule>>& policies) {
  for (std::size_t i = 0; i < bindings.size(); ++i)
    for (std::size_t j = 0; j < bindings[i]->policies.size(); ++j)
      if (!policies.contains(bindings[i]->policies[j]))
        list.item(i).child("policies").item(j).fail("no policy \"" + bindings[i]->policies[j] + "\" in policies:");
}

template <class T>
std::vector<const binding*> bases(const std::vector<T>& v) {
  std::vector<const binding*> out;
  for (auto& b : v) out.push_back(&b);
  return out;
}

}  // namespace

std::optional<auth_config> load_auth_sections(const node_at& root) {
  auto at = root.child("auth");
  auto policies = root.child("policies");
  if (!at.present()) {
    if (policies.present()) policies.fail("given without an auth section, which would bind callers to them");
    return std::nullopt;
  }
  at.expect_map({"tokens", "unix", "certs", "require_request_header"});
  auth_config a;
  a.policies = load_policies(policies);
  a.tokens = load_list<token_binding>(at.child("tokens"), load_token);
  a.unix_peers = load_list<unix_binding>(at.child("unix"), load_unix);
  a.certs = load_list<cert_binding>(at.child("certs"), load_cert);
  if (auto r = at.child("require_request_header"); r.present()) a.require_request_header = r.boolean();
  std::set<std::string> names, hashes;
  for (std::size_t i = 0; i < a.tokens.size(); ++i) {
    if (!names.insert(a.tokens[i].name).second) at.child("tokens").item(i).child("name").fail("duplicate token name");
    if (!hashes.insert(a.tokens[i].sha256).second) at.child("tokens").item(i).child("sha256").fail("duplicate token");
  }
  check_policy_names(at.child("tokens"), bases(a.tokens), a.policies);
  check_policy_names(at.child("unix"), bases(a.unix_peers), a.policies);
  check_policy_names(at.child("certs"), bases(a.certs), a.policies);
  return a;
}

}  // namespace hsmb
