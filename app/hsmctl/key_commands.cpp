// hsmctl keys: list, create, show, rotate, config, delete.
#include <iostream>

#include "app/hsmctl/ctl.h"
#include "app/hsmctl/output.h"

namespace hsmb::hsmctl {
namespace json = boost::json;

namespace {

std::string trim_newline(std::string s) {
  while (s.ends_with('\n')) s.pop_back();
  return s;
}

}  // namespace

int ctl::keys() {
  std::string sub = o_.args.size() > 1 ? arg(1) : "list";
  if (sub == "list") {
    o_.accept({});
    o_.operands(2, 0, 0);
    auto v = call("GET", "/v1/transit/keys?list=true");
    if (const auto* names = field(data_of(v), "keys"); !o_.json && names && names->is_array())
      for (const auto& name : names->get_array()) std::cout << text(&name) << "\n";
    return exit_ok;
  }
  if (sub != "create" && sub != "show" && sub != "rotate" && sub != "config" && sub != "delete")
    fail("unknown keys command " + sub + " (see hsmctl --help)");
  o_.operands(2, 1, 1);
  std::string path = "/v1/transit/keys/" + segment(arg(2));
  if (sub == "create") return create_key(path);
  if (sub == "config") return configure_key(path);
  if (sub == "show") return show_key(path);
  o_.accept({});
  if (sub == "rotate") {
    auto v = call("POST", path + "/rotate");
    if (!o_.json)
      std::cout << "rotated key " << arg(2) << ": version " << text(field(data_of(v), "latest_version"))
                << " is the latest\n";
  } else {
    call("DELETE", path);
    if (!o_.json) std::cout << "deleted key " << arg(2) << "\n";
  }
  return exit_ok;
}

int ctl::create_key(const std::string& path) {
  o_.accept({"--type", "--auto-rotate-period"});
  json::object body;
  if (auto type = o_.value("--type")) body["type"] = *type;
  if (auto period = o_.value("--auto-rotate-period")) body["auto_rotate_period"] = *period;
  auto v = call("POST", path, &body);
  if (o_.json) return exit_ok;
  const auto& d = data_of(v);
  std::cout << "created key " << arg(2) << ": " << text(field(d, "type")) << ", version "
            << text(field(d, "latest_version")) << "\n";
  return exit_ok;
}

int ctl::configure_key(const std::string& path) {
  o_.accept({"--min-decryption-version", "--min-encryption-version", "--deletion-allowed", "--auto-rotate-period"});
  json::object body;
  if (auto n = number_option("--min-decryption-version")) body["min_decryption_version"] = *n;
  if (auto n = number_option("--min-encryption-version")) body["min_encryption_version"] = *n;
  if (auto del = o_.value("--deletion-allowed")) {
    if (*del != "true" && *del != "false") fail("--deletion-allowed takes true or false, not \"" + *del + "\"");
    body["deletion_allowed"] = *del == "true";
  }
  if (auto period = o_.value("--auto-rotate-period")) body["auto_rotate_period"] = *period;
  if (body.empty()) fail("keys config needs a setting to change (see hsmctl --help)");
  auto v = call("POST", path + "/config", &body);
  if (o_.json) return exit_ok;
  const auto& d = data_of(v);
  std::cout << "configured key " << arg(2) << ":";
  for (auto key : {"min_decryption_version", "min_encryption_version", "deletion_allowed", "auto_rotate_period"})
    if (const auto* value = field(d, key)) std::cout << " " << key << "=" << text(value);
  std::cout << "\n";
  return exit_ok;
}

int ctl::show_key(const std::string& path) {
  o_.accept({});
  auto v = call("GET", path);
  if (o_.json) return exit_ok;
  const auto& data = data_of(v);
  for (auto key : {"name", "type", "latest_version", "min_decryption_version", "min_encryption_version",
                   "deletion_allowed", "auto_rotate_period", "supports_encryption", "supports_decryption",
                   "supports_signing", "supports_derivation"})
    if (const auto* value = field(data, key)) std::cout << key << ": " << text(value) << "\n";
  if (const auto* versions = field(data, "keys"); versions && versions->is_object())
    for (const auto& [version, info] : versions->get_object())
      if (const auto* pem = field(info, "public_key"))
        std::cout << "public key, version " << std::string_view(version) << ":\n" << trim_newline(text(pem)) << "\n";
  return exit_ok;
}

}  // namespace hsmb::hsmctl
