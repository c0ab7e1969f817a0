// The PKCS#11 2.40 entry points. Only C_GetFunctionList is exported (exports.map); the functions
// it lists check the module's state, take the module lock for its tables only, and never let an
// exception reach the application.
#include <algorithm>
#include <cstring>
#include <new>
#include <span>
#include <string>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "common/base64.h"
#include "pkcs11_front/certificates.h"
#include "pkcs11_front/cipher.h"
#include "pkcs11_front/cryptoki.h"
#include "pkcs11_front/key_generation.h"
#include "pkcs11_front/module_state.h"
#include "pkcs11_front/signing.h"

namespace hsmb::p11 {
namespace {
namespace json = boost::json;

constexpr CK_SLOT_ID the_slot = 0;
constexpr std::size_t max_random_chunk = 1u << 20;  // the broker's limit per request

template <class F>
CK_RV guarded(F&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return CKR_HOST_MEMORY;
  } catch (...) {
    return CKR_GENERAL_ERROR;
  }
}

#define HSMB_READY()                                          \
  do {                                                        \
    if (!state().ready()) return CKR_CRYPTOKI_NOT_INITIALIZED; \
  } while (0)

void pad(CK_UTF8CHAR* field, std::size_t size, std::string_view text) {
  std::memset(field, ' ', size);
  std::memcpy(field, text.data(), std::min(size, text.size()));
}

std::shared_ptr<session> session_of(CK_SESSION_HANDLE h) { return state().find_session(h); }

std::optional<object> object_of(CK_OBJECT_HANDLE h) {
  lock_guard g(state().lock);
  return state().objects.find(h);
}

// The two-call convention for output: no buffer asks the length, a short buffer is
// CKR_BUFFER_TOO_SMALL; neither ends the operation.
CK_RV length_only(std::size_t need, CK_BYTE_PTR out, CK_ULONG_PTR out_len, bool& done) {
  done = true;
  if (!out) { *out_len = need; return CKR_OK; }
  if (*out_len < need) { *out_len = need; return CKR_BUFFER_TOO_SMALL; }
  done = false;
  return CKR_OK;
}

template <class Bytes>
CK_RV put(const Bytes& b, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (*out_len < b.size()) { *out_len = b.size(); return CKR_BUFFER_TOO_SMALL; }
  std::memcpy(out, b.data(), b.size());
  *out_len = b.size();
  return CKR_OK;
}

byte_view view(CK_BYTE_PTR p, CK_ULONG n) { return p ? byte_view(p, n) : byte_view(); }

// ---- general purpose, slots and tokens

CK_RV initialize(CK_VOID_PTR args) {
  return guarded([&] { return state().initialize(args); });
}

CK_RV finalize(CK_VOID_PTR reserved) {
  if (reserved) return CKR_ARGUMENTS_BAD;
  HSMB_READY();
  return guarded([&] { return state().finalize(); });
}

CK_RV get_info(CK_INFO_PTR info) {
  HSMB_READY();
  if (!info) return CKR_ARGUMENTS_BAD;
  *info = {};
  info->cryptokiVersion = {2, 40};
  pad(info->manufacturerID, sizeof info->manufacturerID, "hsm-broker");
  pad(info->libraryDescription, sizeof info->libraryDescription, "hsm-broker PKCS#11 front module");
  info->libraryVersion = {0, 1};
  return CKR_OK;
}

CK_RV get_slot_list(CK_BBOOL, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  HSMB_READY();
  if (!count) return CKR_ARGUMENTS_BAD;
  if (!list) { *count = 1; return CKR_OK; }
  if (*count < 1) { *count = 1; return CKR_BUFFER_TOO_SMALL; }
  list[0] = the_slot;
  *count = 1;
  return CKR_OK;
}

CK_RV get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  HSMB_READY();
  if (slot != the_slot) return CKR_SLOT_ID_INVALID;
  if (!info) return CKR_ARGUMENTS_BAD;
  *info = {};
  pad(info->slotDescription, sizeof info->slotDescription, "hsm-broker (Vault Transit over a Unix socket)");
  pad(info->manufacturerID, sizeof info->manufacturerID, "hsm-broker");
  info->flags = CKF_TOKEN_PRESENT | CKF_HW_SLOT;
  info->hardwareVersion = {0, 1};
  info->firmwareVersion = {0, 1};
  return CKR_OK;
}

CK_RV get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  HSMB_READY();
  if (slot != the_slot) return CKR_SLOT_ID_INVALID;
  if (!info) return CKR_ARGUMENTS_BAD;
  *info = {};
  pad(info->label, sizeof info->label, "hsm-broker");
  pad(info->manufacturerID, sizeof info->manufacturerID, "hsm-broker");
  pad(info->model, sizeof info->model, "Vault Transit");
  pad(info->serialNumber, sizeof info->serialNumber, "1");
  // No CKF_LOGIN_REQUIRED: the caller is known by its socket peer; a PIN, when given, is a token.
  info->flags = CKF_RNG | CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;
  CK_ULONG n;
  {
    lock_guard g(state().lock);
    n = state().sessions.size();
  }
  info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
  info->ulSessionCount = n;
  info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
  info->ulRwSessionCount = n;
  info->ulMaxPinLen = 4096;
  info->ulMinPinLen = 0;
  info->ulTotalPublicMemory = info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulTotalPrivateMemory = info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
  info->hardwareVersion = {0, 1};
  info->firmwareVersion = {0, 1};
  pad(info->utcTime, sizeof info->utcTime, "");
  return CKR_OK;
}

CK_RV get_mechanism_list(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) {
  HSMB_READY();
  if (slot != the_slot) return CKR_SLOT_ID_INVALID;
  if (!count) return CKR_ARGUMENTS_BAD;
  auto all = all_mechanisms();
  if (!list) { *count = all.size(); return CKR_OK; }
  if (*count < all.size()) { *count = all.size(); return CKR_BUFFER_TOO_SMALL; }
  for (std::size_t i = 0; i < all.size(); ++i) list[i] = all[i].type;
  *count = all.size();
  return CKR_OK;
}

CK_RV get_mechanism_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info) {
  HSMB_READY();
  if (slot != the_slot) return CKR_SLOT_ID_INVALID;
  if (!info) return CKR_ARGUMENTS_BAD;
  auto* m = find_mechanism(type);
  if (!m) return CKR_MECHANISM_INVALID;
  *info = {m->min_key, m->max_key, m->flags};
  return CKR_OK;
}

// ---- sessions and login

CK_RV open_session(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR, CK_NOTIFY, CK_SESSION_HANDLE_PTR out) {
  HSMB_READY();
  if (slot != the_slot) return CKR_SLOT_ID_INVALID;
  if (!(flags & CKF_SERIAL_SESSION)) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
  if (!out) return CKR_ARGUMENTS_BAD;
  return guarded([&] {
    auto& st = state();
    lock_guard g(st.lock);
    auto s = std::make_shared<session>();
    s->handle = st.next_session++;
    s->flags = flags;
    st.sessions[s->handle] = s;
    *out = s->handle;
    return CKR_OK;
  });
}

CK_RV close_session(CK_SESSION_HANDLE h) {
  HSMB_READY();
  auto& st = state();
  lock_guard g(st.lock);
  if (st.sessions.erase(h) == 0) return CKR_SESSION_HANDLE_INVALID;
  if (st.sessions.empty()) {  // the login ends with the application's last session
    st.logged_in = false;
    st.login_token.clear();
  }
  return CKR_OK;
}

CK_RV close_all_sessions(CK_SLOT_ID slot) {
  HSMB_READY();
  if (slot != the_slot) return CKR_SLOT_ID_INVALID;
  auto& st = state();
  lock_guard g(st.lock);
  st.sessions.clear();
  st.logged_in = false;
  st.login_token.clear();
  return CKR_OK;
}

CK_RV get_session_info(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!info) return CKR_ARGUMENTS_BAD;
  bool rw = s->flags & CKF_RW_SESSION;
  bool user;
  {
    lock_guard g(state().lock);
    user = state().logged_in;
  }
  info->slotID = the_slot;
  info->state = user ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS) : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
  info->flags = s->flags;
  info->ulDeviceError = 0;
  return CKR_OK;
}

// The PIN is a broker token (as X-Vault-Token): checked with lookup-self. An empty PIN logs in as
// the socket peer.
CK_RV login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len) {
  HSMB_READY();
  if (!session_of(h)) return CKR_SESSION_HANDLE_INVALID;
  if (user == CKU_CONTEXT_SPECIFIC) return CKR_OPERATION_NOT_INITIALIZED;  // no key asks for it
  if (user != CKU_USER) return CKR_USER_TYPE_INVALID;
  if (pin_len && !pin) return CKR_ARGUMENTS_BAD;
  return guarded([&] {
    auto& st = state();
    {
      lock_guard g(st.lock);
      if (st.logged_in) return CKR_USER_ALREADY_LOGGED_IN;
    }
    secure_string token(reinterpret_cast<const char*>(pin), pin_len);
    if (!token.empty()) {
      auto r = st.call_as("GET", "/v1/auth/token/lookup-self", "", &token);
      if (!r) return r.error();
      if (r->status == 403) return CKR_PIN_INCORRECT;
      if (r->status != 200) return st.status_rv(*r, purpose::read);
    }
    lock_guard g(st.lock);
    st.login_token = std::move(token);
    st.logged_in = true;
    return CKR_OK;
  });
}

CK_RV logout(CK_SESSION_HANDLE h) {
  HSMB_READY();
  if (!session_of(h)) return CKR_SESSION_HANDLE_INVALID;
  auto& st = state();
  lock_guard g(st.lock);
  if (!st.logged_in) return CKR_USER_NOT_LOGGED_IN;
  st.logged_in = false;
  st.login_token.clear();
  return CKR_OK;
}

// ---- objects

bool is_key_class(CK_OBJECT_CLASS c) {
  return c == CKO_PRIVATE_KEY || c == CKO_PUBLIC_KEY || c == CKO_SECRET_KEY || (c == CKO_CERTIFICATE && certificates_enabled());
}

std::string text_of(const CK_ATTRIBUTE& a) {
  return a.pValue ? std::string(static_cast<const char*>(a.pValue), a.ulValueLen) : std::string();
}

// Which keys a template can match: the one its label or ID names (no listing needed, so a caller
// allowed to use a key but not to list keys finds it), else every key the caller may list.
std::expected<std::vector<CK_OBJECT_HANDLE>, CK_RV> search(std::span<const CK_ATTRIBUTE> tmpl) {
  std::optional<std::string> name;
  bool by_id = false, asks_edwards = false;
  for (auto& a : tmpl) {
    if (a.type == CKA_KEY_TYPE && a.ulValueLen == sizeof(CK_KEY_TYPE) && a.pValue)
      asks_edwards = *static_cast<const CK_KEY_TYPE*>(a.pValue) == CKK_EC_EDWARDS;
    if (a.type == CKA_CLASS && a.ulValueLen == sizeof(CK_OBJECT_CLASS) && a.pValue &&
        !is_key_class(*static_cast<const CK_OBJECT_CLASS*>(a.pValue)))
      return std::vector<CK_OBJECT_HANDLE>{};  // data objects (and certificates unless HSM_BROKER_PKCS11_CERTS): none
    if (a.type == CKA_LABEL) name = text_of(a);
    by_id |= a.type == CKA_ID;
    if (a.type == CKA_ID && !name) {
      auto id = text_of(a);
      if (auto colon = id.rfind(":v"); colon != std::string::npos) name = id.substr(0, colon);
      else return std::vector<CK_OBJECT_HANDLE>{};
    }
  }
  std::vector<std::string> names;
  if (name) {
    names.push_back(*name);
  } else {
    auto listed = state().list_keys();
    if (!listed) return std::unexpected(listed.error());
    names = std::move(*listed);
  }
  std::vector<object> found;
  for (auto& n : names) {
    auto objects = state().load_key(n);
    if (!objects) return std::unexpected(objects.error());
    for (auto& o : *objects) {
      bool older = o.version != o.key->latest;
      if (matches(o, tmpl) && !(name && !by_id && older)) found.push_back(std::move(o));  // the label alone: the latest
    }
  }
  // Ed25519 keys (CKK_EC_EDWARDS, a PKCS#11 3.0 key type) only for a search that names them: by
  // label, ID or key type. Clients written for 2.40 fail on a type they do not know (libp11 0.4.12,
  // OpenSSL's pkcs11 engine, then finds no private key at all).
  bool show_edwards = name || asks_edwards;
  std::vector<CK_OBJECT_HANDLE> out;
  for (auto& o : found)
    if (show_edwards || o.key->family != key_family::ed25519) out.push_back(o.handle);
  return out;
}

CK_RV find_objects_init(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (count && !tmpl) return CKR_ARGUMENTS_BAD;
  if (s->found) return CKR_OPERATION_ACTIVE;
  return guarded([&] {
    auto found = search(std::span<const CK_ATTRIBUTE>(tmpl, count));
    if (!found) return found.error();
    s->found = std::move(*found);
    s->found_at = 0;
    return CKR_OK;
  });
}

CK_RV find_objects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG_PTR count) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->found) return CKR_OPERATION_NOT_INITIALIZED;
  if (!count || (max && !out)) return CKR_ARGUMENTS_BAD;
  CK_ULONG n = 0;
  while (n < max && s->found_at < s->found->size()) out[n++] = (*s->found)[s->found_at++];
  *count = n;
  return CKR_OK;
}

CK_RV find_objects_final(CK_SESSION_HANDLE h) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->found) return CKR_OPERATION_NOT_INITIALIZED;
  s->found.reset();
  return CKR_OK;
}

CK_RV get_attribute_value(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count) {
  HSMB_READY();
  if (!session_of(h)) return CKR_SESSION_HANDLE_INVALID;
  if (count && !tmpl) return CKR_ARGUMENTS_BAD;
  return guarded([&] {
    auto o = object_of(oh);
    if (!o) return CKR_OBJECT_HANDLE_INVALID;
    CK_RV rv = CKR_OK;
    for (CK_ULONG i = 0; i < count; ++i) {
      auto& a = tmpl[i];
      std::expected<bytes, CK_RV> v;
      if (o->cls == CKO_CERTIFICATE && a.type == CKA_VALUE) {
        v = state().certificate(*o);
        if (!v && v.error() != CKR_ATTRIBUTE_TYPE_INVALID) return v.error();  // no certificate now: an outage, not a missing attribute
      } else {
        v = attribute(*o, a.type);
      }
      if (!v) {
        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
        rv = v.error();
      } else if (!a.pValue) {
        a.ulValueLen = v->size();
      } else if (a.ulValueLen < v->size()) {
        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
        rv = CKR_BUFFER_TOO_SMALL;
      } else {
        std::memcpy(a.pValue, v->data(), v->size());
        a.ulValueLen = v->size();
      }
    }
    return rv;
  });
}

CK_RV destroy_object(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!(s->flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  return guarded([&] {
    auto o = object_of(oh);
    if (!o) return CKR_OBJECT_HANDLE_INVALID;
    if (o->cls == CKO_CERTIFICATE) return CKR_ACTION_PROHIBITED;  // made by the module, not a key to delete
    auto& st = state();
    auto& name = o->key->name;
    auto fresh = st.load_key(name);  // deletion_allowed as the broker has it now
    if (!fresh) return fresh.error();
    if (fresh->empty()) return CKR_OBJECT_HANDLE_INVALID;
    if (!fresh->front().key->deletion_allowed) {
      debug("C_DestroyObject: key \"" + name + "\" has deletion_allowed false");
      return CKR_ACTION_PROHIBITED;
    }
    auto r = st.call("DELETE", "/v1/transit/keys/" + path_segment(name), "");
    if (!r) return r.error();
    if (r->status >= 300 && r->status != 404) return st.status_rv(*r, purpose::destroy);
    lock_guard g(st.lock);
    st.objects.remove_key(name);  // the key with every version: Transit deletes keys, not versions
    return CKR_OK;
  });
}

// ---- sign and verify

CK_RV sign_init_common(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key, bool verify) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  auto& slot = verify ? s->verify : s->sign;
  if (slot) return CKR_OPERATION_ACTIVE;
  return guarded([&] {
    auto o = object_of(key);
    if (!o) return CKR_KEY_HANDLE_INVALID;
    return sign_init(slot, mech, *o, verify);
  });
}

CK_RV sign_init_fn(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) { return sign_init_common(h, m, k, false); }
CK_RV verify_init_fn(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) { return sign_init_common(h, m, k, true); }

CK_RV sign_out(session& s, byte_view data, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
  if (!sig_len) return CKR_ARGUMENTS_BAD;
  bool done = false;
  CK_RV rv = length_only(signature_length(*s.sign), sig, sig_len, done);
  if (done) return rv;
  sign_state op = std::move(*s.sign);
  s.sign.reset();
  if (rv = sign_update(op, data); rv != CKR_OK) return rv;
  auto r = sign_final(op);
  if (!r) return r.error();
  return put(*r, sig, sig_len);
}

CK_RV sign_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->sign) return CKR_OPERATION_NOT_INITIALIZED;
  if (len && !data) return CKR_ARGUMENTS_BAD;
  return guarded([&] { return sign_out(*s, view(data, len), sig, sig_len); });
}

CK_RV sign_update_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->sign) return CKR_OPERATION_NOT_INITIALIZED;
  if (len && !part) return CKR_ARGUMENTS_BAD;
  return guarded([&] {
    CK_RV rv = sign_update(*s->sign, view(part, len));
    if (rv != CKR_OK) s->sign.reset();
    return rv;
  });
}

CK_RV sign_final_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->sign) return CKR_OPERATION_NOT_INITIALIZED;
  return guarded([&] { return sign_out(*s, {}, sig, sig_len); });
}

CK_RV verify_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->verify) return CKR_OPERATION_NOT_INITIALIZED;
  if ((len && !data) || (sig_len && !sig)) return CKR_ARGUMENTS_BAD;
  return guarded([&] {
    sign_state op = std::move(*s->verify);
    s->verify.reset();
    if (CK_RV rv = sign_update(op, view(data, len)); rv != CKR_OK) return rv;
    return verify_final(op, view(sig, sig_len));
  });
}

CK_RV verify_update_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->verify) return CKR_OPERATION_NOT_INITIALIZED;
  if (len && !part) return CKR_ARGUMENTS_BAD;
  return guarded([&] {
    CK_RV rv = sign_update(*s->verify, view(part, len));
    if (rv != CKR_OK) s->verify.reset();
    return rv;
  });
}

CK_RV verify_final_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->verify) return CKR_OPERATION_NOT_INITIALIZED;
  if (sig_len && !sig) return CKR_ARGUMENTS_BAD;
  return guarded([&] {
    sign_state op = std::move(*s->verify);
    s->verify.reset();
    return verify_final(op, view(sig, sig_len));
  });
}

// ---- encrypt and decrypt (AES-GCM)

std::optional<cipher_state>& cipher_slot(session& s, bool encrypt) { return encrypt ? s.encrypt : s.decrypt; }

CK_RV cipher_init_common(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key, bool encrypt) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  auto& slot = cipher_slot(*s, encrypt);
  if (slot) return CKR_OPERATION_ACTIVE;
  return guarded([&] {
    auto o = object_of(key);
    if (!o) return CKR_KEY_HANDLE_INVALID;
    return cipher_init(slot, mech, *o, encrypt);
  });
}

CK_RV cipher_out(session& s, bool encrypt, byte_view in, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (!out_len) return CKR_ARGUMENTS_BAD;
  auto& slot = cipher_slot(s, encrypt);
  if (!encrypt && slot->buffer.size() + in.size() < 16) {
    slot.reset();
    return CKR_ENCRYPTED_DATA_LEN_RANGE;
  }
  std::size_t need = encrypt ? slot->buffer.size() + in.size() + 16 : slot->buffer.size() + in.size() - 16;
  bool done = false;
  CK_RV rv = length_only(need, out, out_len, done);
  if (done) return rv;
  cipher_state op = std::move(*slot);
  slot.reset();
  if (rv = cipher_update(op, in); rv != CKR_OK) return rv;
  auto r = cipher_final(op);
  if (!r) return r.error();
  return put(*r, out, out_len);
}

CK_RV cipher_single(CK_SESSION_HANDLE h, bool encrypt, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!cipher_slot(*s, encrypt)) return CKR_OPERATION_NOT_INITIALIZED;
  if (in_len && !in) return CKR_ARGUMENTS_BAD;
  return guarded([&] { return cipher_out(*s, encrypt, view(in, in_len), out, out_len); });
}

// GCM output comes whole at the final call (the broker seals the message at once).
CK_RV cipher_update_common(CK_SESSION_HANDLE h, bool encrypt, CK_BYTE_PTR in, CK_ULONG in_len, CK_ULONG_PTR out_len) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  auto& slot = cipher_slot(*s, encrypt);
  if (!slot) return CKR_OPERATION_NOT_INITIALIZED;
  if ((in_len && !in) || !out_len) return CKR_ARGUMENTS_BAD;
  return guarded([&] {
    CK_RV rv = cipher_update(*slot, view(in, in_len));
    if (rv != CKR_OK) slot.reset();
    *out_len = 0;
    return rv;
  });
}

CK_RV cipher_final_common(CK_SESSION_HANDLE h, bool encrypt, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!cipher_slot(*s, encrypt)) return CKR_OPERATION_NOT_INITIALIZED;
  return guarded([&] { return cipher_out(*s, encrypt, {}, out, out_len); });
}

CK_RV encrypt_init_fn(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) { return cipher_init_common(h, m, k, true); }
CK_RV decrypt_init_fn(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) { return cipher_init_common(h, m, k, false); }
CK_RV encrypt_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  return cipher_single(h, true, in, n, out, out_len);
}
CK_RV decrypt_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  return cipher_single(h, false, in, n, out, out_len);
}
CK_RV encrypt_update_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR, CK_ULONG_PTR out_len) {
  return cipher_update_common(h, true, in, n, out_len);
}
CK_RV decrypt_update_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR, CK_ULONG_PTR out_len) {
  return cipher_update_common(h, false, in, n, out_len);
}
CK_RV encrypt_final_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) { return cipher_final_common(h, true, out, out_len); }
CK_RV decrypt_final_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) { return cipher_final_common(h, false, out, out_len); }

// ---- keys and random

CK_RV generate_key_fn(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count, CK_OBJECT_HANDLE_PTR out) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!mech || !out || (count && !tmpl)) return CKR_ARGUMENTS_BAD;
  if (!(s->flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  return guarded([&] {
    auto r = generate_key(*mech, std::span<const CK_ATTRIBUTE>(tmpl, count));
    if (!r) return r.error();
    *out = *r;
    return CKR_OK;
  });
}

CK_RV generate_key_pair_fn(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR pub, CK_ULONG npub,
                           CK_ATTRIBUTE_PTR priv, CK_ULONG npriv, CK_OBJECT_HANDLE_PTR out_pub, CK_OBJECT_HANDLE_PTR out_priv) {
  HSMB_READY();
  auto s = session_of(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!mech || !out_pub || !out_priv || (npub && !pub) || (npriv && !priv)) return CKR_ARGUMENTS_BAD;
  if (!(s->flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  return guarded([&] {
    auto r = generate_key_pair(*mech, std::span<const CK_ATTRIBUTE>(pub, npub), std::span<const CK_ATTRIBUTE>(priv, npriv));
    if (!r) return r.error();
    *out_pub = r->first;
    *out_priv = r->second;
    return CKR_OK;
  });
}

CK_RV generate_random_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len) {
  HSMB_READY();
  if (!session_of(h)) return CKR_SESSION_HANDLE_INVALID;
  if (len && !out) return CKR_ARGUMENTS_BAD;
  return guarded([&] {
    auto& st = state();
    for (CK_ULONG done = 0; done < len;) {
      std::size_t n = std::min<std::size_t>(len - done, max_random_chunk);
      auto r = st.call("POST", "/v1/transit/random/" + std::to_string(n), R"({"format":"base64"})");
      if (!r) return r.error();
      if (r->status != 200) return st.status_rv(*r, purpose::random);
      auto* o = r->data() ? r->data()->if_object() : nullptr;
      auto* b = o ? o->if_contains("random_bytes") : nullptr;
      auto bytes = b && b->is_string() ? base64_decode(std::string_view(b->as_string())) : std::nullopt;
      if (!bytes || bytes->size() != n) return CKR_GENERAL_ERROR;
      std::memcpy(out + done, bytes->data(), n);
      done += n;
    }
    return CKR_OK;
  });
}

CK_RV seed_random_fn(CK_SESSION_HANDLE h, CK_BYTE_PTR, CK_ULONG) {
  HSMB_READY();
  if (!session_of(h)) return CKR_SESSION_HANDLE_INVALID;
  return CKR_RANDOM_SEED_NOT_SUPPORTED;  // the HSMs' generators take no seed from us
}

CK_RV function_not_parallel(CK_SESSION_HANDLE) { return CKR_FUNCTION_NOT_PARALLEL; }

template <class... A>
CK_RV unsupported(A...) {
  return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV get_function_list(CK_FUNCTION_LIST_PTR_PTR out);

CK_FUNCTION_LIST function_list = {
    .version = {2, 40},
    .C_Initialize = initialize,
    .C_Finalize = finalize,
    .C_GetInfo = get_info,
    .C_GetFunctionList = get_function_list,
    .C_GetSlotList = get_slot_list,
    .C_GetSlotInfo = get_slot_info,
    .C_GetTokenInfo = get_token_info,
    .C_GetMechanismList = get_mechanism_list,
    .C_GetMechanismInfo = get_mechanism_info,
    .C_InitToken = unsupported,
    .C_InitPIN = unsupported,
    .C_SetPIN = unsupported,
    .C_OpenSession = open_session,
    .C_CloseSession = close_session,
    .C_CloseAllSessions = close_all_sessions,
    .C_GetSessionInfo = get_session_info,
    .C_GetOperationState = unsupported,
    .C_SetOperationState = unsupported,
    .C_Login = login,
    .C_Logout = logout,
    .C_CreateObject = unsupported,
    .C_CopyObject = unsupported,
    .C_DestroyObject = destroy_object,
    .C_GetObjectSize = unsupported,
    .C_GetAttributeValue = get_attribute_value,
    .C_SetAttributeValue = unsupported,
    .C_FindObjectsInit = find_objects_init,
    .C_FindObjects = find_objects,
    .C_FindObjectsFinal = find_objects_final,
    .C_EncryptInit = encrypt_init_fn,
    .C_Encrypt = encrypt_fn,
    .C_EncryptUpdate = encrypt_update_fn,
    .C_EncryptFinal = encrypt_final_fn,
    .C_DecryptInit = decrypt_init_fn,
    .C_Decrypt = decrypt_fn,
    .C_DecryptUpdate = decrypt_update_fn,
    .C_DecryptFinal = decrypt_final_fn,
    .C_DigestInit = unsupported,
    .C_Digest = unsupported,
    .C_DigestUpdate = unsupported,
    .C_DigestKey = unsupported,
    .C_DigestFinal = unsupported,
    .C_SignInit = sign_init_fn,
    .C_Sign = sign_fn,
    .C_SignUpdate = sign_update_fn,
    .C_SignFinal = sign_final_fn,
    .C_SignRecoverInit = unsupported,
    .C_SignRecover = unsupported,
    .C_VerifyInit = verify_init_fn,
    .C_Verify = verify_fn,
    .C_VerifyUpdate = verify_update_fn,
    .C_VerifyFinal = verify_final_fn,
    .C_VerifyRecoverInit = unsupported,
    .C_VerifyRecover = unsupported,
    .C_DigestEncryptUpdate = unsupported,
    .C_DecryptDigestUpdate = unsupported,
    .C_SignEncryptUpdate = unsupported,
    .C_DecryptVerifyUpdate = unsupported,
    .C_GenerateKey = generate_key_fn,
    .C_GenerateKeyPair = generate_key_pair_fn,
    .C_WrapKey = unsupported,
    .C_UnwrapKey = unsupported,
    .C_DeriveKey = unsupported,
    .C_SeedRandom = seed_random_fn,
    .C_GenerateRandom = generate_random_fn,
    .C_GetFunctionStatus = function_not_parallel,
    .C_CancelFunction = function_not_parallel,
    .C_WaitForSlotEvent = unsupported,
};

CK_RV get_function_list(CK_FUNCTION_LIST_PTR_PTR out) {
  if (!out) return CKR_ARGUMENTS_BAD;
  *out = &function_list;
  return CKR_OK;
}

}  // namespace
}  // namespace hsmb::p11

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
  return hsmb::p11::get_function_list(out);
}
