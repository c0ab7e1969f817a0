#include "app/hsmctl/ctl.h"

#include <unistd.h>

#include <cctype>
#include <charconv>
#include <fstream>
#include <iostream>
#include <iterator>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "app/hsmctl/output.h"

namespace hsmb::hsmctl {
namespace json = boost::json;

namespace {

client::endpoint choose_endpoint(const options& o) {
  if (o.socket) return {.unix_path = *o.socket};
  std::string url;
  if (o.address) {
    url = *o.address;
  } else if (const char* s = std::getenv("HSMCTL_SOCKET"); s && *s) {
    return {.unix_path = s};
  } else if (const char* a = std::getenv("VAULT_ADDR"); a && *a) {
    url = a;
  } else {
    return {.unix_path = "/run/hsm-broker/broker.sock"};
  }
  auto ep = client::parse_address(url);
  if (!ep) fail("bad address \"" + url + "\": expected http://HOST:PORT or unix:///PATH");
  return *ep;
}

json::value parse(const client::reply& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  return ec ? json::value{} : v;
}

void drop_newline(std::string& s) {
  if (s.ends_with("\r\n")) s.resize(s.size() - 2);
  else if (s.ends_with('\n')) s.pop_back();
}

}  // namespace

const json::value& data_of(const json::value& v) {
  static const json::value none;
  const auto* d = field(v, "data");
  return d ? *d : none;
}

std::string segment(std::string_view name) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

void append_segment(std::string& path, std::string_view name) {
  path += '/';
  path += segment(name);
}

ctl::ctl(options o) : o_(std::move(o)), client_(choose_endpoint(o_)) {}

client::reply ctl::send(std::string_view method, const std::string& target, const json::object* body) {
  std::string payload = body ? json::serialize(*body) : std::string();
  try {
    return client_.request(method, target, payload, o_.token);
  } catch (const std::exception& e) {
    fail(e.what(), exit_unreachable);  // "cannot reach <endpoint>: <why>"
  }
}

json::value ctl::call(std::string_view method, const std::string& target, const json::object* body) {
  auto r = send(method, target, body);
  if (o_.json) std::cout << (r.body.empty() ? "{}" : r.body) << (r.body.ends_with('\n') ? "" : "\n");
  auto v = parse(r);
  if (r.status < 200 || r.status > 299) fail_on_error(r, v);
  return v;
}

// "hsmctl: 404: unknown key x" on stderr, exit 2.
void ctl::fail_on_error(const client::reply& r, const json::value& v) {
  std::string errors;
  if (const auto* list = field(v, "errors"); list && list->is_array())
    for (const auto& e : list->get_array()) errors += (errors.empty() ? "" : "; ") + text(&e);
  if (errors.empty()) errors = r.body.empty() ? "no details" : r.body;
  fail(std::to_string(r.status) + ": " + errors);
}

std::string ctl::input(std::size_t i) {
  auto file = o_.value("--input-file");
  if (i < o_.args.size()) {
    if (file) fail("give the input as an operand or --input-file, not both");
    if (o_.flag("--no-newline")) fail("--no-newline applies to stdin and --input-file, not to an operand");
    return o_.args[i];
  }
  std::string data;
  if (file) {
    std::ifstream in(*file, std::ios::binary);
    if (!in) fail("cannot read " + *file);
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else {
    if (::isatty(STDIN_FILENO)) std::cerr << "hsmctl: reading the input from stdin (end it with Ctrl-D)\n";
    data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (o_.flag("--no-newline")) drop_newline(data);
  return data;
}

void ctl::print_field(const json::value& v, std::string_view key) {
  if (!o_.json) std::cout << text(field(data_of(v), key)) << "\n";
}

std::optional<std::uint64_t> ctl::number_option(std::string_view name) {
  auto v = o_.value(name);
  if (!v) return std::nullopt;
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (v->empty() || ec != std::errc{} || end != v->data() + v->size())
    fail(std::string(name) + " takes a whole number, not \"" + *v + "\"");
  return n;
}

int ctl::run() {
  o_.operands(0, 1, o_.args.size());
  const std::string& command = arg(0);
  if (command == "status") return status();
  if (command == "members") return members();
  if (command == "sync") return sync();
  if (command == "keys") return keys();
  if (command == "encrypt") return encrypt();
  if (command == "decrypt") return decrypt();
  if (command == "rewrap") return rewrap();
  if (command == "datakey") return datakey();
  if (command == "sign") return sign();
  if (command == "verify") return verify();
  if (command == "hmac") return hmac();
  if (command == "random") return random();
  if (command == "audit") return audit_hash();
  fail("unknown command " + command + " (see hsmctl --help)");
}

}  // namespace hsmb::hsmctl
