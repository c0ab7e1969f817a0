#include "app/hsmctl/token.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <iostream>
#include <regex>

#include "api/audit/sha256.h"
#include "common/base64.h"

namespace hsmb::ctl {

int token_command(const std::vector<std::string>& args, bool json) {
  static const std::regex name_re("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}");
  if (args.size() != 2 || args[0] != "new" || !std::regex_match(args[1], name_re)) {
    std::cerr << "usage: hsmctl token new NAME   (NAME: letters, digits, '.', '_', '-')\n";
    return 2;
  }
  std::array<unsigned char, 32> raw;
  if (RAND_bytes(raw.data(), raw.size()) != 1) {
    std::cerr << "hsmctl: no random bytes from OpenSSL\n";
    return 2;
  }
  auto token = base64url_encode(byte_view(raw.data(), raw.size()));
  OPENSSL_cleanse(raw.data(), raw.size());
  // The token once, for the caller; the config keeps only its hash.
  auto hash = api::audit::sha256_hex(token, {});
  auto line = "- { name: " + args[1] + ", sha256: \"" + hash + "\", policies: [] }";
  if (json) {  // names, hex and base64url: nothing to escape
    std::cout << "{\"name\":\"" << args[1] << "\",\"token\":\"" << token << "\",\"sha256\":\"" << hash << "\"}\n";
    OPENSSL_cleanse(token.data(), token.size());
    return 0;
  }
  std::cout << token << "\n"
            << "# give the token above to " << args[1] << " (X-Vault-Token); add this under auth.tokens:\n"
            << line << "\n";
  OPENSSL_cleanse(token.data(), token.size());
  return 0;
}

}  // namespace hsmb::ctl
