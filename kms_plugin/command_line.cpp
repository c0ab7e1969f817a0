#include "kms_plugin/command_line.h"

#include "kms_plugin/transit_key.h"

namespace hsmb::kms {

std::expected<options, std::string> parse_command_line(const std::vector<std::string>& args) {
  options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "-h" || a == "--help") {
      o.help = true;
      return o;
    }
    std::string* target = a == "--listen"          ? &o.listen
                          : a == "--broker-socket" ? &o.broker_socket
                          : a == "--key"           ? &o.key
                          : a == "--token-file"    ? &o.token_file
                                                   : nullptr;
    if (!target) return std::unexpected("unknown argument \"" + a + "\"");
    if (i + 1 == args.size() || args[i + 1].empty()) return std::unexpected(a + " needs a value");
    *target = args[++i];
  }
  if (o.listen.empty()) return std::unexpected("--listen is required");
  if (o.broker_socket.empty()) return std::unexpected("--broker-socket is required");
  if (o.key.empty()) return std::unexpected("--key is required");
  if (!valid_key_name(o.key)) return std::unexpected("--key \"" + o.key + "\" is not a valid key name ([A-Za-z0-9_.-], 1 to 128)");
  for (auto* path : {&o.listen, &o.broker_socket})
    if (path->starts_with("unix://")) *path = path->substr(7);  // as in the EncryptionConfiguration
  return o;
}

}  // namespace hsmb::kms
