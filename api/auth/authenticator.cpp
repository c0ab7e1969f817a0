#include "api/auth/authenticator.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

#include "api/auth/peer_unit.h"
#include "common/base64.h"

namespace hsmb::api {
namespace {

// Vault's default policy grants every token a look at itself.
const std::vector<policy_rule> default_rules = {{"auth/token/lookup-self", acl_bits::read}};

template <class T>
std::vector<acl> acls_of(const std::vector<T>& bindings, const auth_config& cfg) {
  std::vector<acl> out;
  for (auto& b : bindings) out.emplace_back(b.policies, cfg.policies, default_rules);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view presented_token(const request& req) {
  if (auto t = trim(req.vault_token); !t.empty()) return t;
  auto auth = trim(req.authorization);
  if (auth.size() > 7 && iequals(auth.substr(0, 7), "bearer ")) return trim(auth.substr(7));
  return {};
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  return hex_encode(byte_view(digest, len));
}

authenticator::authenticator(auth_config cfg)
    : cfg_(std::move(cfg)),
      token_acls_(acls_of(cfg_.tokens, cfg_)),
      unix_acls_(acls_of(cfg_.unix_peers, cfg_)),
      cert_acls_(acls_of(cfg_.certs, cfg_)) {
  for (auto& u : cfg_.unix_peers) rules_need_unit_ = rules_need_unit_ || !u.unit.empty();
}

std::optional<identified> authenticator::identify(const request& req, bool want_unit) const {
  if (auto token = presented_token(req); !token.empty()) return by_token(token);
  if (req.tls) return by_cert(*req.tls);
  if (req.peer) return by_peer(*req.peer, want_unit);
  return identified{};
}

std::optional<identified> authenticator::by_token(std::string_view token) const {
  auto hash = sha256_hex(token);
  for (std::size_t i = 0; i < cfg_.tokens.size(); ++i) {
    auto& t = cfg_.tokens[i];
    if (CRYPTO_memcmp(hash.data(), t.sha256.data(), hash.size()) != 0) continue;
    caller who{caller_kind::token, "token-" + t.name, t.policies};
    return identified{std::move(who), &token_acls_[i], &t};
  }
  return std::nullopt;
}

identified authenticator::by_cert(const tls_peer& cert) const {
  for (std::size_t i = 0; i < cfg_.certs.size(); ++i) {
    auto& c = cfg_.certs[i];
    bool uri = !c.uri_san.empty() && std::find(cert.uri_sans.begin(), cert.uri_sans.end(), c.uri_san) != cert.uri_sans.end();
    bool cn = !c.subject_cn.empty() && c.subject_cn == cert.subject_cn;
    if (!uri && !cn) continue;
    caller who{caller_kind::cert, "cert-" + (cn ? c.subject_cn : c.uri_san), c.policies};
    who.cert_subject = cert.subject;
    return identified{std::move(who), &cert_acls_[i], &c};
  }
  identified none;
  none.who.cert_subject = cert.subject;
  return none;
}

identified authenticator::by_peer(const peer_identity& peer, bool want_unit) const {
  identified out;
  out.who.uid = peer.uid;
  out.who.gid = peer.gid;
  out.who.pid = peer.pid;
  if (rules_need_unit_ || want_unit) out.who.unit = peer_unit(peer.pid, peer.uid);
  for (std::size_t i = 0; i < cfg_.unix_peers.size(); ++i) {
    auto& u = cfg_.unix_peers[i];
    if ((u.uid && *u.uid != peer.uid) || (u.gid && *u.gid != peer.gid) || (!u.unit.empty() && u.unit != out.who.unit)) continue;
    out.who.kind = caller_kind::unix_peer;
    out.who.display_name = "unix-" + u.label;
    out.who.policies = u.policies;
    out.rights = &unix_acls_[i];
    out.bound = &u;
    break;
  }
  return out;
}

}  // namespace hsmb::api
