// hsmctl encrypt, decrypt, rewrap, datakey, sign, verify, hmac, random: the Transit operations.
#include <iostream>

#include "app/hsmctl/ctl.h"
#include "app/hsmctl/output.h"
#include "common/base64.h"

namespace hsmb::hsmctl {
namespace json = boost::json;

namespace {

std::string base64(std::string_view raw) { return hsmb::base64_encode(hsmb::as_bytes(raw)); }

}  // namespace

int ctl::encrypt() {
  o_.accept({"--input-file", "--no-newline", "--key-version"});
  o_.operands(1, 1, 2);
  std::string path = "/v1/transit/encrypt/" + segment(arg(1));
  json::object body{{"plaintext", base64(input(2))}};
  if (auto n = number_option("--key-version")) body["key_version"] = *n;
  print_field(call("POST", path, &body), "ciphertext");
  return exit_ok;
}

int ctl::decrypt() {
  o_.accept({});
  o_.operands(1, 2, 2);
  std::string path = "/v1/transit/decrypt/" + segment(arg(1));
  json::object body{{"ciphertext", arg(2)}};
  auto v = call("POST", path, &body);
  if (o_.json) return exit_ok;
  const auto* plaintext = field(data_of(v), "plaintext");
  auto raw = plaintext && plaintext->is_string() ? hsmb::base64_decode(plaintext->get_string()) : std::nullopt;
  if (!raw) fail("the reply holds no valid base64 plaintext");
  std::cout.write(reinterpret_cast<const char*>(raw->data()), static_cast<std::streamsize>(raw->size()));
  return exit_ok;
}

int ctl::rewrap() {
  o_.accept({"--key-version"});
  o_.operands(1, 2, 2);
  json::object body{{"ciphertext", arg(2)}};
  if (auto n = number_option("--key-version")) body["key_version"] = *n;
  print_field(call("POST", "/v1/transit/rewrap/" + segment(arg(1)), &body), "ciphertext");
  return exit_ok;
}

int ctl::datakey() {
  o_.accept({"--plaintext", "--bits"});
  o_.operands(1, 1, 1);
  bool plaintext = o_.flag("--plaintext");
  json::object body;
  if (auto bits = number_option("--bits")) body["bits"] = *bits;
  std::string path = std::string("/v1/transit/datakey/") + (plaintext ? "plaintext/" : "wrapped/") + segment(arg(1));
  auto v = call("POST", path, &body);
  if (o_.json) return exit_ok;
  const auto& d = data_of(v);
  std::cout << "ciphertext: " << text(field(d, "ciphertext")) << "\n";
  if (plaintext) std::cout << "plaintext:  " << text(field(d, "plaintext")) << "\n";
  return exit_ok;
}

int ctl::sign() {
  o_.accept({"--input-file", "--no-newline", "--hash", "--signature-algorithm", "--key-version"});
  o_.operands(1, 1, 2);
  std::string path = "/v1/transit/sign/" + segment(arg(1));
  if (auto hash = o_.value("--hash")) append_segment(path, *hash);
  json::object body{{"input", base64(input(2))}};
  if (auto alg = o_.value("--signature-algorithm")) body["signature_algorithm"] = *alg;
  if (auto n = number_option("--key-version")) body["key_version"] = *n;
  print_field(call("POST", path, &body), "signature");
  return exit_ok;
}

// verify NAME INPUT SIGNATURE, or verify NAME SIGNATURE with the input from --input-file or stdin.
int ctl::verify() {
  o_.accept({"--input-file", "--no-newline", "--hash", "--signature-algorithm", "--hmac"});
  o_.operands(1, 2, 3);
  bool operand_input = o_.args.size() == 4;
  std::string value = operand_input ? arg(3) : arg(2);
  std::string data = operand_input ? input(2) : input(o_.args.size());
  std::string path = "/v1/transit/verify/" + segment(arg(1));
  if (auto hash = o_.value("--hash")) append_segment(path, *hash);
  json::object body{{"input", base64(data)}, {o_.flag("--hmac") ? "hmac" : "signature", value}};
  if (auto alg = o_.value("--signature-algorithm")) body["signature_algorithm"] = *alg;
  auto v = call("POST", path, &body);
  const auto* valid = field(data_of(v), "valid");
  bool ok = valid && valid->is_bool() && valid->get_bool();
  if (!o_.json) std::cout << (ok ? "valid" : "invalid") << "\n";
  return ok ? exit_ok : exit_negative;
}

int ctl::hmac() {
  o_.accept({"--input-file", "--no-newline", "--hash", "--key-version"});
  o_.operands(1, 1, 2);
  std::string path = "/v1/transit/hmac/" + segment(arg(1));
  if (auto hash = o_.value("--hash")) append_segment(path, *hash);
  json::object body{{"input", base64(input(2))}};
  if (auto n = number_option("--key-version")) body["key_version"] = *n;
  print_field(call("POST", path, &body), "hmac");
  return exit_ok;
}

int ctl::random() {
  o_.accept({"--hex"});
  o_.operands(1, 0, 1);
  std::string bytes = o_.args.size() > 1 ? arg(1) : "32";
  if (bytes.empty() || bytes.find_first_not_of("0123456789") != std::string::npos)
    fail("BYTES must be a number, not \"" + bytes + "\"");
  json::object body{{"format", o_.flag("--hex") ? "hex" : "base64"}};
  print_field(call("POST", "/v1/transit/random/" + bytes, &body), "random_bytes");
  return exit_ok;
}

}  // namespace hsmb::hsmctl
