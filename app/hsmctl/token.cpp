#include "app/hsmctl/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <iostream>
#include <regex>

namespace hsmb::ctl {
namespace {

std::string base64url(const unsigned char* p, std::size_t n) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | p[i];
    bits += 8;
    while (bits >= 6) out += alphabet[(acc >> (bits -= 6)) & 63];
  }
  if (bits > 0) out += alphabet[(acc << (6 - bits)) & 63];
  return out;
}

std::string sha256_hex(const std::string& s) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> d;
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &len, EVP_sha256(), nullptr);
  std::string out;
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) (out += hex[d[i] >> 4]) += hex[d[i] & 15];
  return out;
}

}  // namespace

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
  auto token = base64url(raw.data(), raw.size());
  OPENSSL_cleanse(raw.data(), raw.size());
  // The token once, for the caller; the config keeps only its hash.
  auto line = "- { name: " + args[1] + ", sha256: \"" + sha256_hex(token) + "\", policies: [] }";
  if (json) {  // names, hex and base64url: nothing to escape
    std::cout << "{\"name\":\"" << args[1] << "\",\"token\":\"" << token << "\",\"sha256\":\"" << sha256_hex(token)
              << "\"}\n";
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
