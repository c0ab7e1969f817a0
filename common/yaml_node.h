// Reading the YAML configuration: a node that knows its key path, so that every error names it.
// Includes yaml-cpp: for the configuration parsers only (broker/config.cpp, service_settings.cpp).
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/config_error.h"

namespace hsmb {

// The file's text; throws config_error "PATH: cannot read: WHY".
std::string read_config_text(const std::string& path);
// Throws config_error "SOURCE: not valid YAML: ...".
YAML::Node parse_yaml(const std::string& text, const std::string& source_name);

// A YAML node with the path that leads to it. Every check throws config_error "PATH: WHY".
class node_at {
 public:
  node_at(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& why) const;
  const std::string& path() const { return path_; }
  bool present() const { return node_.IsDefined() && !node_.IsNull(); }

  node_at child(const std::string& key) const { return {node_[key], path_.empty() ? key : path_ + "." + key}; }
  node_at item(std::size_t i) const { return {node_[i], path_ + "[" + std::to_string(i) + "]"}; }

  void expect_map(std::initializer_list<const char*> allowed) const;
  std::size_t expect_sequence() const;
  std::string text() const;
  std::string nonempty_text() const;
  std::uint64_t number(std::uint64_t min, std::uint64_t max) const;
  bool boolean() const;
  std::chrono::milliseconds duration() const;           // 250ms, 2s, 5m, 1h
  std::chrono::milliseconds positive_duration() const;  // and not 0
  const YAML::Node& raw() const { return node_; }

 private:
  YAML::Node node_;
  std::string path_;
};

}  // namespace hsmb
