// The in-process PKCS#11 baseline; see pkcs11_target.h.
#include "bench/pkcs11_target.h"

#include <cstdlib>

#include "broker/keys/metadata.h"
#include "hsm_backends/pkcs11/pkcs11_backend.h"

namespace hsmb::bench {
namespace {

std::string describe(const hsm_error& e) { return ckr_name(e.ckr) + ": " + e.message; }

// ECDSA and RSA-PSS sign a SHA-256 digest (the input is one); Ed25519 signs the message itself.
sign_mechanism mechanism_for(operation op) {
  if (op == operation::sign_rsa_2048) return sign_mechanism::rsa_pss;
  if (op == operation::sign_ed25519) return sign_mechanism::eddsa;
  return sign_mechanism::ecdsa;
}

std::string default_label(operation op) {
  if (op == operation::random) return "";
  return key_object_label(default_key(op), 1);  // the broker's name for v1; bench-mac is an `hmac` key
}

std::expected<member_settings, std::string> settings_from(const pkcs11_target_options& o) {
  const char* pin = std::getenv(o.pin_env.c_str());
  if (!pin) return std::unexpected("environment variable " + o.pin_env + " (--pin-env) is not set");
  member_settings s;
  s.module = o.module;
  s.token_label = o.token;
  s.pin = pin;
  s.sessions = o.sessions;
  return s;
}

template <class T>
std::optional<std::string> error_of(const hsm_result<T>& r) {
  if (r) return std::nullopt;
  return describe(r.error());
}

}  // namespace

std::expected<std::unique_ptr<pkcs11_target>, std::string> pkcs11_target::open(const pkcs11_target_options& o) {
  auto settings = settings_from(o);
  if (!settings) return std::unexpected(settings.error());
  auto t = std::unique_ptr<pkcs11_target>(new pkcs11_target());
  t->backend_ = make_pkcs11_backend();
  if (auto opened = t->backend_->open(*settings); !opened)
    return std::unexpected("cannot open token '" + o.token + "': " + describe(opened.error()));
  t->op_ = o.op;
  t->label_ = o.label.empty() ? default_label(o.op) : o.label;
  if (auto ready = t->prepare_input(); !ready) return std::unexpected(ready.error());
  return t;
}

std::expected<void, std::string> pkcs11_target::prepare_input() {
  input_ = random_input(input_size(op_));
  if (!is_decrypt(op_)) return {};
  auto sealed = backend_->encrypt(label_, input_, {});
  if (!sealed) return std::unexpected("encrypt before decrypt: " + describe(sealed.error()));
  input_ = std::move(*sealed);
  return {};
}

call_fn pkcs11_target::make_call() {
  return [this] { return call_once(); };
}

std::optional<std::string> pkcs11_target::call_once() {
  if (is_sign(op_)) return error_of(backend_->sign(label_, mechanism_for(op_), hash_alg::sha256, input_));
  if (is_encrypt(op_)) return error_of(backend_->encrypt(label_, input_, {}));
  if (is_decrypt(op_)) return error_of(backend_->decrypt(label_, input_, {}));
  if (op_ == operation::hmac) return error_of(backend_->hmac(label_, hash_alg::sha256, input_));
  return error_of(backend_->random(32));
}

}  // namespace hsmb::bench
