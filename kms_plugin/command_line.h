// hsm-kms-plugin's command line: --listen SOCK --broker-socket PATH --key NAME [--token-file F].
#pragma once

#include <expected>
#include <string>
#include <vector>

namespace hsmb::kms {

struct options {
  std::string listen;         // Unix socket path the apiserver connects to
  std::string broker_socket;  // the broker's Unix socket
  std::string key;            // Transit key name (aes256-gcm96)
  std::string token_file;     // optional: a broker token (X-Vault-Token), one line
  bool help = false;
};

// The options, or a message naming what is wrong.
std::expected<options, std::string> parse_command_line(const std::vector<std::string>& args);

inline constexpr const char* usage =
    "usage: hsm-kms-plugin --listen SOCK --broker-socket PATH --key NAME [--token-file FILE]\n"
    "\n"
    "Serves the Kubernetes KMS v2 API (v2.KeyManagementService) on the Unix socket SOCK, using the\n"
    "Transit key NAME (type aes256-gcm96) of the hsm-broker listening on PATH.\n"
    "  --listen SOCK         socket for kube-apiserver (EncryptionConfiguration endpoint unix://SOCK)\n"
    "  --broker-socket PATH  the broker's Unix socket (listen.unix.path)\n"
    "  --key NAME            the Transit key; it must exist (hsmctl keys create NAME)\n"
    "  --token-file FILE     a broker token, sent as X-Vault-Token (when the broker has auth:)\n"
    "Environment: HSMB_LOG_LEVEL (debug, info, warn, error).\n";

}  // namespace hsmb::kms
