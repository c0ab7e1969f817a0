// hsmctl's session with one broker: requests, error answers as exit codes, command input. The
// commands are grouped by what they touch: broker_commands.cpp, key_commands.cpp,
// data_commands.cpp.
#pragma once

#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "api/client/broker_client.h"
#include "app/hsmctl/options.h"

namespace hsmb::hsmctl {

class ctl {
 public:
  explicit ctl(options o);
  int run();

 private:
  const std::string& arg(std::size_t i) const { return o_.args[i]; }  // after options::operands
  client::reply send(std::string_view method, const std::string& target, const boost::json::object* body = nullptr);
  [[noreturn]] void fail_on_error(const client::reply& r, const boost::json::value& v);
  // The parsed body of a 2xx answer, printed as-is with --output json; any other exits 2.
  boost::json::value call(std::string_view method, const std::string& target, const boost::json::object* body = nullptr);
  // The bytes a command works on: operand `i` when given, else --input-file, else stdin;
  // --no-newline drops one trailing newline of the last two.
  std::string input(std::size_t i);
  // The `data` field's `key` as a line of text (nothing with --output json).
  void print_field(const boost::json::value& v, std::string_view key);
  std::optional<std::uint64_t> number_option(std::string_view name);

  int status();
  int members();
  int sync();
  int audit_hash();
  int keys();
  int create_key(const std::string& path);
  int configure_key(const std::string& path);
  int show_key(const std::string& path);
  int encrypt();
  int decrypt();
  int rewrap();
  int datakey();
  int sign();
  int verify();
  int hmac();
  int random();

  options o_;
  client::broker_client client_;
};

const boost::json::value& data_of(const boost::json::value& v);
// A key name as one path segment.
std::string segment(std::string_view name);
// path += "/" + segment(name), appended piecewise (GCC 12's -Wrestrict false positive, bug 105329).
void append_segment(std::string& path, std::string_view name);

}  // namespace hsmb::hsmctl
