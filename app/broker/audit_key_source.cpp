#include "app/broker/audit_key_source.h"

#include "api/audit/audit_key.h"
#include "common/base64.h"

namespace hsmb::app {
using boost::asio::awaitable;

awaitable<broker_result<secure_bytes>> derive_audit_key(key_service& keys) {
  const std::string name(api::audit::key_name);
  auto existing = co_await keys.lifecycle().read_key(name);
  if (!existing && existing.error().kind != error_kind::not_found) co_return std::unexpected(existing.error());
  if (!existing) {
    auto made = co_await keys.lifecycle().create_key(name, create_options{key_type::hmac});
    if (!made) co_return std::unexpected(made.error());
  }
  auto input = api::audit::derivation_input;
  auto mac = co_await keys.operations().hmac(name, byte_view(reinterpret_cast<const std::uint8_t*>(input.data()), input.size()),
                                             hash_alg::sha256, 1u);
  if (!mac) co_return std::unexpected(mac.error());
  constexpr std::string_view prefix = "vault:v1:";
  if (!mac->text.starts_with(prefix)) co_return internal("the audit key's HMAC is not a vault:v1: value");
  auto key = base64_decode(std::string_view(mac->text).substr(prefix.size()));
  if (!key || key->size() != 32) co_return internal("the audit key's HMAC is not 32 bytes");
  secure_wipe(mac->text.data(), mac->text.size());  // it is the key, in base64
  co_return std::move(*key);
}

}  // namespace hsmb::app
