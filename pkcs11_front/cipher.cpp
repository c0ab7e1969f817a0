#include "pkcs11_front/cipher.h"

#include <algorithm>
#include <cstring>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "common/base64.h"
#include "pkcs11_front/module_state.h"
#include "pkcs11_front/signing.h"

namespace hsmb::p11 {
namespace json = boost::json;
namespace {

constexpr std::size_t nonce_bytes = 12, tag_bytes = 16;

void wipe(std::string& s) { secure_wipe(s.data(), s.size()); }

std::expected<secure_bytes, CK_RV> encrypt_final(cipher_state& s) {
  auto& st = state();
  json::object body{{"plaintext", base64_encode(s.buffer)}, {"key_version", s.key.version}};
  if (!s.aad.empty()) body["associated_data"] = base64_encode(s.aad);
  auto text = json::serialize(body);
  body = {};
  auto r = st.call("POST", "/v1/transit/encrypt/" + path_segment(s.key.key->name), text);
  wipe(text);
  if (!r) return std::unexpected(r.error());
  if (r->status != 200) return std::unexpected(st.status_rv(*r, purpose::encrypt));
  auto* o = r->data() ? r->data()->if_object() : nullptr;
  auto* ct = o ? o->if_contains("ciphertext") : nullptr;
  auto sealed = ct && ct->is_string() ? versioned_value(std::string_view(ct->as_string()), false) : std::nullopt;
  if (!sealed || sealed->size() != s.buffer.size() + nonce_bytes + tag_bytes) return std::unexpected(CKR_GENERAL_ERROR);
  if (s.iv_out) std::memcpy(s.iv_out, sealed->data(), nonce_bytes);  // the nonce the broker chose
  return secure_bytes(sealed->begin() + nonce_bytes, sealed->end());
}

std::expected<secure_bytes, CK_RV> decrypt_final(cipher_state& s) {
  auto& st = state();
  if (s.buffer.size() < tag_bytes) return std::unexpected(CKR_ENCRYPTED_DATA_LEN_RANGE);
  secure_bytes sealed(s.iv.begin(), s.iv.end());
  sealed.insert(sealed.end(), s.buffer.begin(), s.buffer.end());
  json::object body{{"ciphertext", "vault:v" + std::to_string(s.key.version) + ":" + base64_encode(sealed)}};
  if (!s.aad.empty()) body["associated_data"] = base64_encode(s.aad);
  auto text = json::serialize(body);
  auto r = st.call("POST", "/v1/transit/decrypt/" + path_segment(s.key.key->name), text);
  if (!r) return std::unexpected(r.error());
  if (r->status != 200) return std::unexpected(st.status_rv(*r, purpose::decrypt));
  auto* o = r->data() ? r->data()->if_object() : nullptr;
  auto* pt = o ? o->if_contains("plaintext") : nullptr;
  auto plain = pt && pt->is_string() ? base64_decode(std::string_view(pt->as_string())) : std::nullopt;
  if (pt && pt->is_string()) secure_wipe(const_cast<char*>(pt->as_string().data()), pt->as_string().size());
  if (!plain) return std::unexpected(CKR_GENERAL_ERROR);
  return std::move(*plain);
}

}  // namespace

CK_RV cipher_init(std::optional<cipher_state>& out, const CK_MECHANISM* mech, const object& key, bool encrypt) {
  if (!mech) return CKR_ARGUMENTS_BAD;
  if (mech->mechanism != CKM_AES_GCM) return CKR_MECHANISM_INVALID;
  if (key.cls != CKO_SECRET_KEY || key.key->family != key_family::aes) return CKR_KEY_TYPE_INCONSISTENT;
  if (!mech->pParameter || mech->ulParameterLen != sizeof(CK_GCM_PARAMS)) return CKR_MECHANISM_PARAM_INVALID;
  auto* p = static_cast<const CK_GCM_PARAMS*>(mech->pParameter);
  if (p->ulIvLen != nonce_bytes || !p->pIv || p->ulTagBits != tag_bytes * 8) return CKR_MECHANISM_PARAM_INVALID;
  if (p->ulAADLen && !p->pAAD) return CKR_MECHANISM_PARAM_INVALID;
  cipher_state s;
  s.key = key;
  s.encrypt = encrypt;
  s.iv.assign(p->pIv, p->pIv + nonce_bytes);
  if (encrypt) {
    // The broker picks the nonce; a caller's own IV cannot be honoured.
    if (std::any_of(s.iv.begin(), s.iv.end(), [](auto b) { return b != 0; })) return CKR_MECHANISM_PARAM_INVALID;
    s.iv_out = p->pIv;
  }
  s.aad.assign(p->pAAD, p->pAAD + p->ulAADLen);
  out = std::move(s);
  return CKR_OK;
}

CK_RV cipher_update(cipher_state& s, byte_view data) {
  if (s.buffer.size() + data.size() > (16u << 20)) return s.encrypt ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE;
  s.buffer.insert(s.buffer.end(), data.begin(), data.end());
  return CKR_OK;
}

std::size_t cipher_output_length(const cipher_state& s) {
  if (s.encrypt) return s.buffer.size() + tag_bytes;
  return s.buffer.size() >= tag_bytes ? s.buffer.size() - tag_bytes : 0;
}

std::expected<secure_bytes, CK_RV> cipher_final(cipher_state& s) { return s.encrypt ? encrypt_final(s) : decrypt_final(s); }

}  // namespace hsmb::p11
