// The module's state between C_Initialize and C_Finalize: the broker link, the login, the object
// table and the sessions. A process forked from one that initialised the module sees it as not
// initialised (the spec's rule) until it calls C_Initialize itself.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "pkcs11_front/broker_link.h"
#include "pkcs11_front/module_lock.h"
#include "pkcs11_front/objects.h"
#include "pkcs11_front/session.h"

namespace hsmb::p11 {

// What a broker error means for a PKCS#11 caller, per operation (a 400 is the data's fault in a
// sign, the ciphertext's in a decrypt, the template's in a key generation).
enum class purpose { read, sign, decrypt, encrypt, generate, destroy, random };

class module_state {
 public:
  CK_RV initialize(CK_VOID_PTR args);
  CK_RV finalize();
  bool ready() const { return initialized_ && pid_ == ::getpid(); }

  module_lock lock;
  // Under `lock`:
  object_table objects;
  std::map<CK_SESSION_HANDLE, std::shared_ptr<session>> sessions;
  CK_SESSION_HANDLE next_session = 1;
  bool logged_in = false;
  secure_string login_token;  // the PIN given to C_Login (may be empty: the socket peer's identity)

  // A request as the caller: the login token, else HSM_BROKER_TOKEN, else the socket peer.
  std::expected<answer, CK_RV> call(std::string_view method, std::string_view path, std::string_view body);
  std::expected<answer, CK_RV> call_as(std::string_view method, std::string_view path, std::string_view body,
                                       const secure_string* token);
  CK_RV status_rv(const answer& a, purpose p);
  std::shared_ptr<session> find_session(CK_SESSION_HANDLE h);  // takes `lock`

  // GET /v1/transit/keys/:name into the object table: nullptr when the key does not exist or
  // may not be read; an error for outages.
  std::expected<std::vector<object>, CK_RV> load_key(const std::string& name);
  std::expected<std::vector<std::string>, CK_RV> list_keys();
  // A certificate object's DER, made on first use and kept for the module's life.
  std::expected<bytes, CK_RV> certificate(const object& o);

 private:
  std::map<std::pair<std::string, std::uint32_t>, bytes> certificates_;  // under `lock`
  std::optional<broker_link> link_;
  bool initialized_ = false;
  pid_t pid_ = 0;
};

module_state& state();
// HSM_BROKER_PKCS11_DEBUG=1: why a call failed, on stderr (never a secret).
void debug(const std::string& what);

}  // namespace hsmb::p11
