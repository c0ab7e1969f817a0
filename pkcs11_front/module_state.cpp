#include "pkcs11_front/module_state.h"

#include <stdio.h>
#include <stdlib.h>

#include "pkcs11_front/certificates.h"

namespace hsmb::p11 {
namespace json = boost::json;

// Never destroyed: applications (OpenSSL's engine cleanup among them) call C_Finalize from their
// own exit handlers, which may run after this library's static destructors.
module_state& state() {
  static module_state* s = new module_state;
  return *s;
}

void debug(const std::string& what) {
  static const bool on = [] {
    const char* v = ::getenv("HSM_BROKER_PKCS11_DEBUG");
    return v && *v && *v != '0';
  }();
  if (on) ::fprintf(stderr, "hsm-broker-pkcs11: %s\n", what.c_str());
}

CK_RV module_state::initialize(CK_VOID_PTR args) {
  auto* a = static_cast<CK_C_INITIALIZE_ARGS*>(args);
  if (a) {
    if (a->pReserved) return CKR_ARGUMENTS_BAD;
    int given = !!a->CreateMutex + !!a->DestroyMutex + !!a->LockMutex + !!a->UnlockMutex;
    if (given != 0 && given != 4) return CKR_ARGUMENTS_BAD;
  }
  if (initialized_ && pid_ == ::getpid()) return CKR_CRYPTOKI_ALREADY_INITIALIZED;
  if (initialized_) {  // a fork child: the parent's state is not ours to use or to tear down
    if (link_) link_->forget_after_fork();
    link_.reset();
    sessions.clear();
    objects.clear();
    certificates_.clear();
    login_token.clear();
    logged_in = false;
    initialized_ = false;
    lock.forget();
  }
  auto settings = link_settings::from_environment();
  if (!settings) {
    debug(settings.error());
    return CKR_GENERAL_ERROR;
  }
  if (CK_RV rv = lock.init(a); rv != CKR_OK) return rv;
  link_.emplace(std::move(*settings), lock);
  pid_ = ::getpid();
  initialized_ = true;
  return CKR_OK;
}

CK_RV module_state::finalize() {
  {
    lock_guard g(lock);
    sessions.clear();
    objects.clear();
    certificates_.clear();
    login_token.clear();
    logged_in = false;
  }
  link_.reset();
  initialized_ = false;
  lock.reset();
  return CKR_OK;
}

std::shared_ptr<session> module_state::find_session(CK_SESSION_HANDLE h) {
  lock_guard g(lock);
  auto it = sessions.find(h);
  return it == sessions.end() ? nullptr : it->second;
}

std::expected<answer, CK_RV> module_state::call(std::string_view method, std::string_view path, std::string_view body) {
  secure_string token;
  {
    lock_guard g(lock);
    token = login_token;
  }
  return call_as(method, path, body, &token);
}

std::expected<answer, CK_RV> module_state::call_as(std::string_view method, std::string_view path, std::string_view body,
                                                   const secure_string* token) {
  auto r = link_->call(method, path, body, token);
  if (!r) debug(std::string(method) + " " + std::string(path) + ": broker unreachable: " + link_->last_error());
  else if (r->status >= 400) debug(std::string(method) + " " + std::string(path) + ": " + std::to_string(r->status) + " " + r->error);
  return r;
}

CK_RV module_state::status_rv(const answer& a, purpose p) {
  if (a.status < 300) return CKR_OK;
  switch (a.status) {
    case 400:
      switch (p) {
        case purpose::sign: return CKR_DATA_INVALID;
        case purpose::encrypt: return CKR_DATA_INVALID;
        case purpose::decrypt: return CKR_ENCRYPTED_DATA_INVALID;
        case purpose::generate: return CKR_TEMPLATE_INCONSISTENT;
        case purpose::destroy: return CKR_ACTION_PROHIBITED;
        case purpose::random: return CKR_ARGUMENTS_BAD;
        case purpose::read: return CKR_GENERAL_ERROR;
      }
      return CKR_GENERAL_ERROR;
    case 403: {
      lock_guard g(lock);
      return logged_in ? CKR_KEY_FUNCTION_NOT_PERMITTED : CKR_USER_NOT_LOGGED_IN;
    }
    case 404: return CKR_KEY_HANDLE_INVALID;  // the key was deleted
    case 413: return p == purpose::decrypt ? CKR_ENCRYPTED_DATA_LEN_RANGE : CKR_DATA_LEN_RANGE;
    case 429:  // still overloaded after the module's retries
    case 502:
    case 503:  // no member can serve: an outage the broker could not cover
    case 504: return CKR_DEVICE_ERROR;
    default: return CKR_GENERAL_ERROR;
  }
}

std::expected<std::vector<object>, CK_RV> module_state::load_key(const std::string& name) {
  auto r = call("GET", "/v1/transit/keys/" + path_segment(name), "");
  if (!r) return std::unexpected(r.error());
  if (r->status == 404 || r->status == 403 || r->status == 400) {
    lock_guard g(lock);
    if (r->status == 404) objects.remove_key(name);
    return std::vector<object>{};
  }
  if (r->status != 200) return std::unexpected(status_rv(*r, purpose::read));
  auto* data = r->data();
  auto info = data ? parse_key_info(*data) : std::nullopt;
  if (!info) return std::vector<object>{};  // a key type the module does not present
  auto shared = std::make_shared<const key_info>(std::move(*info));
  lock_guard g(lock);
  return objects.add(shared);
}

std::expected<bytes, CK_RV> module_state::certificate(const object& o) {
  std::pair<std::string, std::uint32_t> id{o.key->name, o.version};
  {
    lock_guard g(lock);
    if (auto it = certificates_.find(id); it != certificates_.end()) return it->second;
  }
  auto made = make_certificate(o);  // a broker signature: not under the lock
  if (!made) return made;
  lock_guard g(lock);
  return certificates_.try_emplace(id, std::move(*made)).first->second;
}

std::expected<std::vector<std::string>, CK_RV> module_state::list_keys() {
  auto r = call("LIST", "/v1/transit/keys", "");
  if (!r) return std::unexpected(r.error());
  std::vector<std::string> names;
  if (r->status == 403 || r->status == 404) return names;  // may list nothing: keys are then found by label
  if (r->status != 200) return std::unexpected(status_rv(*r, purpose::read));
  auto* data = r->data();
  auto* o = data ? data->if_object() : nullptr;
  auto* keys = o ? o->if_contains("keys") : nullptr;
  if (keys && keys->is_array())
    for (auto& k : keys->as_array())
      if (k.is_string()) names.emplace_back(k.as_string());
  return names;
}

}  // namespace hsmb::p11
