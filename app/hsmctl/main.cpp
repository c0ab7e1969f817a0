// hsmctl: command-line client for hsm-broker's Transit-compatible API (status, members, keys,
// encrypt, decrypt, sign, verify, random).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/client/broker_client.h"
#include "app/hsmctl/token.h"
#include "app/hsmctl/audit.h"
#include "common/base64.h"

namespace {

namespace json = boost::json;
using hsmb::client::broker_client;
using hsmb::client::reply;

constexpr const char* usage = R"(usage: hsmctl [--socket PATH | --address URL] [--token T] [--json] COMMAND [ARGS]

Talks to hsm-broker over its Unix socket or HTTP. Default endpoint: $HSMCTL_SOCKET, else
$VAULT_ADDR (e.g. http://127.0.0.1:8200), else /run/hsm-broker/broker.sock.
The token is --token, else $VAULT_TOKEN; it is sent as X-Vault-Token.

commands:
  status                                  GET /v1/sys/health (exit 0 serving, 2 not)
  members                                 GET /v1/broker/members, as a table
  sync [--repair]                         GET /v1/broker/keys/sync: each key version's copies
                                          and their fingerprints, per member (exit 1 on drift);
                                          --repair: POST, copies what is missing first
  keys [list]                             key names
  keys create NAME [--type TYPE]          aes256-gcm96 (default), aes128-gcm96, ecdsa-p256,
                                          ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096, hmac
  keys show NAME                          type, versions, public keys
  keys rotate NAME                        new key version
  keys delete NAME
  encrypt NAME [PLAINTEXT]                plaintext from stdin when omitted; prints the ciphertext
  decrypt NAME CIPHERTEXT                 writes the plaintext, raw, to stdout
  sign NAME [INPUT] [--hash H] [--signature-algorithm pss|pkcs1v15]
                                          input from stdin when omitted; prints the signature
  verify NAME INPUT SIGNATURE [--hash H] [--signature-algorithm A]
                                          prints valid/invalid (exit 0 / 1)
  random [BYTES] [--hex]                  BYTES (default 32) random bytes, base64 or hex
  token new NAME                          a fresh random token and its auth.tokens line (no broker)
  audit hash VALUE                        POST /v1/sys/audit-hash/file: VALUE as the audit log
                                          writes it (hmac-sha256:...), to search the log
  audit verify FILE                       offline: recomputes the audit log's hash chain;
                                          "ok, N lines" (exit 0) or the first broken line (exit 1)

options:
  --socket PATH     Unix socket of the broker
  --address URL     http://HOST:PORT or unix:///PATH
  --token T         token for X-Vault-Token
  --json            print the response body as returned
  -h, --help        this text

exit status: 0 ok, 1 verify found the signature invalid, 2 error answer or bad usage,
3 broker unreachable.
)";

// Ends the program with this status once the stack has unwound.
struct exit_status {
  int code;
};

[[noreturn]] void fail(const std::string& message, int code = 2) {
  std::cerr << "hsmctl: " << message << "\n";
  throw exit_status{code};
}

struct options {
  std::optional<std::string> socket, address;
  std::string token;
  bool json = false;
  bool hex = false;
  bool repair = false;
  std::string type, hash, signature_algorithm;
  std::vector<std::string> args;  // command and its operands
};

options parse_options(int argc, char** argv) {
  options o;
  const std::map<std::string, std::string*> valued = {{"--token", &o.token},
                                                      {"--type", &o.type},
                                                      {"--hash", &o.hash},
                                                      {"--signature-algorithm", &o.signature_algorithm}};
  bool operands_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (operands_only || arg.size() < 2 || arg[0] != '-') {
      o.args.push_back(arg);
      continue;
    }
    if (arg == "--") {
      operands_only = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      throw exit_status{0};
    }
    if (arg == "--json") {
      o.json = true;
      continue;
    }
    if (arg == "--hex") {
      o.hex = true;
      continue;
    }
    if (arg == "--repair") {
      o.repair = true;
      continue;
    }
    std::optional<std::string> value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    bool known = arg == "--socket" || arg == "--address" || valued.contains(arg);
    if (!known) fail("unknown option " + arg + " (see hsmctl --help)");
    if (!value) {
      if (i + 1 >= argc) fail(arg + " needs a value");
      value = argv[++i];
    }
    if (arg == "--socket")
      o.socket = *value;
    else if (arg == "--address")
      o.address = *value;
    else
      *valued.at(arg) = *value;
  }
  if (o.token.empty())
    if (const char* t = std::getenv("VAULT_TOKEN")) o.token = t;
  return o;
}

hsmb::client::endpoint choose_endpoint(const options& o) {
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
  auto ep = hsmb::client::parse_address(url);
  if (!ep) fail("bad address \"" + url + "\": expected http://HOST:PORT or unix:///PATH");
  return *ep;
}

std::string base64(std::string_view raw) { return hsmb::base64_encode(hsmb::as_bytes(raw)); }

std::string read_stdin() { return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()}; }

// A key name as one path segment.
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

// Human-readable text of a JSON value; "-" when absent or null.
std::string text(const json::value* v) {
  if (v == nullptr || v->is_null()) return "-";
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_double()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v->get_double());
    return buf;
  }
  return json::serialize(*v);
}

std::string trim_newline(std::string s) {
  while (s.ends_with('\n')) s.pop_back();
  return s;
}

const json::value* field(const json::value& v, std::string_view key) {
  const auto* object = v.if_object();
  return object ? object->if_contains(key) : nullptr;
}

class ctl {
 public:
  explicit ctl(options o) : o_(std::move(o)), client_(choose_endpoint(o_)) {}

  int run();

 private:
  std::string arg(std::size_t i, const char* what) {
    if (i >= o_.args.size()) fail(std::string("missing ") + what + " (see hsmctl --help)");
    return o_.args[i];
  }
  std::optional<std::string> optional_arg(std::size_t i) {
    return i < o_.args.size() ? std::optional(o_.args[i]) : std::nullopt;
  }

  reply send(std::string_view method, const std::string& target, const json::object* body = nullptr);
  json::value parse(const reply& r);
  [[noreturn]] void fail_on_error(const reply& r, const json::value& v);
  // The parsed body of a successful reply (printed as-is with --json); an error reply exits 2.
  json::value call(std::string_view method, const std::string& target,
                                  const json::object* body = nullptr);
  static const json::value& data_of(const json::value& v) {
    static const json::value none;
    const auto* d = field(v, "data");
    return d ? *d : none;
  }
  std::string operand_or_stdin(std::size_t i) { return i < o_.args.size() ? o_.args[i] : read_stdin(); }
  void print_field(const json::value& v, std::string_view key) {
    if (!o_.json) std::cout << text(field(data_of(v), key)) << "\n";
  }

  int status();
  int members();
  int sync();
  int keys();
  int encrypt();
  int decrypt();
  int sign();
  int verify();
  int random();
  int audit_hash();

  options o_;
  broker_client client_;
};

reply ctl::send(std::string_view method, const std::string& target, const json::object* body) {
  std::string payload = body ? json::serialize(*body) : std::string();
  try {
    return client_.request(method, target, payload, o_.token);
  } catch (const std::exception& e) {
    fail(e.what(), 3);  // "cannot reach <endpoint>: <why>"
  }
}

json::value ctl::parse(const reply& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  return ec ? json::value{} : v;
}

json::value ctl::call(std::string_view method, const std::string& target, const json::object* body) {
  auto r = send(method, target, body);
  if (o_.json) std::cout << r.body << (r.body.ends_with('\n') ? "" : "\n");
  auto v = parse(r);
  if (r.status < 200 || r.status > 299) fail_on_error(r, v);
  return v;
}

// "hsmctl: 404: unknown key x" on stderr, exit 2.
void ctl::fail_on_error(const reply& r, const json::value& v) {
  std::string errors;
  if (const auto* list = field(v, "errors"); list && list->is_array())
    for (const auto& e : list->get_array()) errors += (errors.empty() ? "" : "; ") + text(&e);
  if (errors.empty()) errors = r.body.empty() ? "no details" : r.body;
  fail(std::to_string(r.status) + ": " + errors);
}

int ctl::status() {
  auto r = send("GET", "/v1/sys/health");
  auto v = parse(r);
  if (o_.json) std::cout << r.body << (r.body.ends_with('\n') ? "" : "\n");
  if (r.status != 200 && r.status != 503) fail_on_error(r, v);
  if (!o_.json) {
    if (const auto* d = field(v, "data")) v = *d;  // Vault answers unwrapped; accept both
    for (auto key : {"initialized", "sealed", "version", "members"})
      std::cout << key << ": " << text(field(v, key)) << "\n";
  }
  return r.status == 200 ? 0 : 2;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i)
      line += row[i] + (i + 1 < row.size() ? std::string(width[i] - row[i].size() + 2, ' ') : "");
    std::cout << line << "\n";
  }
}

int ctl::members() {
  auto v = call("GET", "/v1/broker/members");
  if (o_.json) return 0;
  std::vector<std::vector<std::string>> rows = {{"NAME", "STATE", "SINCE", "IN-FLIGHT", "P50", "P99", "REQUESTS",
                                                 "FAILOVERS", "HEDGES", "RESTARTS", "LAST-ERROR"}};
  const auto* list = field(data_of(v), "members");
  if (list && list->is_array()) {
    for (const auto& m : list->get_array()) {
      const json::value* latency = field(m, "latency_ms");
      const json::value* error = field(m, "last_error");
      rows.push_back({text(field(m, "name")), text(field(m, "state")), text(field(m, "state_since")),
                      text(field(m, "in_flight")), latency ? text(field(*latency, "p50")) : "-",
                      latency ? text(field(*latency, "p99")) : "-", text(field(m, "requests")),
                      text(field(m, "failovers")), text(field(m, "hedges")), text(field(m, "worker_restarts")),
                      error && error->is_object() ? text(field(*error, "code")) : "-"});
    }
  }
  print_table(rows);
  return 0;
}

// One row per key version and member: what `GET /v1/broker/keys/sync` found.
int ctl::sync() {
  auto v = call(o_.repair ? "POST" : "GET", "/v1/broker/keys/sync");
  bool drift = false;
  std::vector<std::vector<std::string>> rows = {{"KEY", "TYPE", "VERSION", "STATUS", "MEMBER", "FINGERPRINT"}};
  const auto* keys = field(data_of(v), "keys");
  if (keys && keys->is_object()) {
    for (const auto& [name, key] : keys->get_object()) {
      const auto* versions = field(key, "versions");
      if (!versions || !versions->is_object()) continue;
      for (const auto& [version, info] : versions->get_object()) {
        auto status = text(field(info, "status"));
        drift |= status != "ok";
        const auto* copies = field(info, "members");
        if (!copies || !copies->is_object()) continue;
        for (const auto& [member, copy] : copies->get_object()) {
          const auto* fp = field(copy, "fingerprint");
          const auto* problem = field(copy, "problem");
          std::string shown = fp ? text(fp) : "";
          if (problem) shown += (shown.empty() ? "(" : " (") + text(problem) + ")";
          rows.push_back({std::string(name), text(field(key, "type")), std::string(version), status, std::string(member), shown});
        }
      }
    }
  }
  if (!o_.json) print_table(rows);
  return drift ? 1 : 0;
}

int ctl::keys() {
  std::string sub = optional_arg(1).value_or("list");
  if (sub == "list") {
    auto v = call("GET", "/v1/transit/keys?list=true");
    if (const auto* names = field(data_of(v), "keys"); !o_.json && names && names->is_array())
      for (const auto& name : names->get_array()) std::cout << text(&name) << "\n";
    return 0;
  }
  std::string path = "/v1/transit/keys/" + segment(arg(2, "key name"));
  if (sub == "create") {
    json::object body;
    if (!o_.type.empty()) body["type"] = o_.type;
    call("POST", path, &body);
  } else if (sub == "rotate") {
    call("POST", path + "/rotate");
  } else if (sub == "delete") {
    call("DELETE", path);
  } else if (sub == "show") {
    auto v = call("GET", path);
    if (o_.json) return 0;
    auto data = data_of(v);
    for (auto key : {"type", "latest_version", "min_decryption_version"})
      std::cout << key << ": " << text(field(data, key)) << "\n";
    if (const auto* versions = field(data, "keys"); versions && versions->is_object())
      for (const auto& [version, info] : versions->get_object())
        if (const auto* pem = field(info, "public_key"))
          std::cout << "public key, version " << std::string_view(version) << ":\n" << trim_newline(text(pem)) << "\n";
  } else {
    fail("unknown keys command " + sub + " (see hsmctl --help)");
  }
  return 0;
}

int ctl::encrypt() {
  std::string path = "/v1/transit/encrypt/" + segment(arg(1, "key name"));
  json::object body{{"plaintext", base64(operand_or_stdin(2))}};
  print_field(call("POST", path, &body), "ciphertext");
  return 0;
}

int ctl::decrypt() {
  std::string path = "/v1/transit/decrypt/" + segment(arg(1, "key name"));
  json::object body{{"ciphertext", arg(2, "ciphertext")}};
  auto v = call("POST", path, &body);
  if (o_.json) return 0;
  const auto* plaintext = field(data_of(v), "plaintext");
  auto raw = plaintext && plaintext->is_string() ? hsmb::base64_decode(plaintext->get_string()) : std::nullopt;
  if (!raw) fail("the reply holds no valid base64 plaintext");
  std::cout.write(reinterpret_cast<const char*>(raw->data()), static_cast<std::streamsize>(raw->size()));
  return 0;
}

int ctl::sign() {
  std::string path = "/v1/transit/sign/" + segment(arg(1, "key name"));
  if (!o_.hash.empty()) path += "/" + segment(o_.hash);
  json::object body{{"input", base64(operand_or_stdin(2))}};
  if (!o_.signature_algorithm.empty()) body["signature_algorithm"] = o_.signature_algorithm;
  print_field(call("POST", path, &body), "signature");
  return 0;
}

int ctl::verify() {
  std::string path = "/v1/transit/verify/" + segment(arg(1, "key name"));
  if (!o_.hash.empty()) path += "/" + segment(o_.hash);
  json::object body{{"input", base64(arg(2, "input"))}, {"signature", arg(3, "signature")}};
  if (!o_.signature_algorithm.empty()) body["signature_algorithm"] = o_.signature_algorithm;
  auto v = call("POST", path, &body);
  const auto* valid = field(data_of(v), "valid");
  bool ok = valid && valid->is_bool() && valid->get_bool();
  if (!o_.json) std::cout << (ok ? "valid" : "invalid") << "\n";
  return ok ? 0 : 1;
}

int ctl::random() {
  std::string bytes = optional_arg(1).value_or("32");
  if (bytes.empty() || bytes.find_first_not_of("0123456789") != std::string::npos)
    fail("BYTES must be a number, not \"" + bytes + "\"");
  json::object body{{"format", o_.hex ? "hex" : "base64"}};
  print_field(call("POST", "/v1/transit/random/" + bytes, &body), "random_bytes");
  return 0;
}

int ctl::audit_hash() {
  if (arg(1, "audit subcommand") != "hash") fail("unknown audit command " + o_.args[1] + " (see hsmctl --help)");
  json::object body{{"input", arg(2, "value")}};
  print_field(call("POST", "/v1/sys/audit-hash/file", &body), "hash");
  return 0;
}

int ctl::run() {
  std::string command = arg(0, "command");
  if (command == "status") return status();
  if (command == "members") return members();
  if (command == "sync") return sync();
  if (command == "keys") return keys();
  if (command == "encrypt") return encrypt();
  if (command == "decrypt") return decrypt();
  if (command == "sign") return sign();
  if (command == "verify") return verify();
  if (command == "random") return random();
  if (command == "audit") return audit_hash();
  fail("unknown command " + command + " (see hsmctl --help)");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto o = parse_options(argc, argv);
    if (o.args.empty()) {
      std::cerr << usage;
      return 2;
    }
    if (o.args[0] == "token") return hsmb::ctl::token_command({o.args.begin() + 1, o.args.end()});
    if (o.args[0] == "audit" && o.args.size() > 1 && o.args[1] == "verify") {  // offline: no broker
      if (o.args.size() < 3) fail("missing file (see hsmctl --help)");
      return hsmb::hsmctl::audit_verify(o.args[2]);
    }
    return ctl(std::move(o)).run();
  } catch (const exit_status& e) {
    return e.code;
  } catch (const std::exception& e) {
    std::cerr << "hsmctl: " << e.what() << "\n";
    return 2;
  }
}
