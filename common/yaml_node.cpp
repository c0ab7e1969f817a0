#include "common/yaml_node.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "common/duration.h"

namespace hsmb {

std::string read_config_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config_error(path + ": cannot read: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

YAML::Node parse_yaml(const std::string& text, const std::string& source_name) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw config_error(source_name + ": not valid YAML: " + e.what());
  }
}

void node_at::fail(const std::string& why) const {
  throw config_error((path_.empty() ? std::string("config") : path_) + ": " + why);
}

void node_at::expect_map(std::initializer_list<const char*> allowed) const {
  if (!node_.IsMap()) fail("expected a mapping");
  std::set<std::string> ok(allowed.begin(), allowed.end());
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    auto key = it->first.as<std::string>();
    if (!ok.count(key)) child(key).fail("unknown key");
  }
}

std::size_t node_at::expect_sequence() const {
  if (!node_.IsSequence()) fail("expected a list");
  return node_.size();
}

std::string node_at::text() const {
  if (!node_.IsScalar()) fail("expected a string");
  return node_.Scalar();
}

std::string node_at::nonempty_text() const {
  auto s = text();
  if (s.empty()) fail("must not be empty");
  return s;
}

std::uint64_t node_at::number(std::uint64_t min, std::uint64_t max) const {
  auto s = text();
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno || s[0] == '-') fail("expected a whole number, got \"" + s + "\"");
  if (v < min || v > max) fail("must be between " + std::to_string(min) + " and " + std::to_string(max));
  return v;
}

bool node_at::boolean() const {
  auto s = text();
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  fail("expected true or false, got \"" + s + "\"");
}

std::chrono::milliseconds node_at::duration() const {
  auto s = text();
  auto d = parse_duration(s);
  if (!d) fail("expected a duration like 250ms, 2s, 5m or 1h, got \"" + s + "\"");
  return *d;
}

std::chrono::milliseconds node_at::positive_duration() const {
  auto d = duration();
  if (d.count() == 0) fail("must be greater than zero");
  return d;
}

}  // namespace hsmb
