// Load on the broker's HTTP API; see broker_target.h.
#include "bench/broker_target.h"

#include <memory>
#include <stdexcept>

#include <boost/json.hpp>

#include "common/base64.h"

namespace hsmb::bench {
namespace {

namespace json = boost::json;

std::string json_body(std::string_view field, std::string_view value) {
  return json::serialize(json::object{{field, value}});
}

std::string route(operation op, const std::string& key) {
  if (op == operation::random) return "/v1/transit/random/32";
  if (is_sign(op)) return "/v1/transit/sign/" + key;  // the broker hashes with sha2-256 (default)
  if (is_encrypt(op)) return "/v1/transit/encrypt/" + key;
  if (is_decrypt(op)) return "/v1/transit/decrypt/" + key;
  return "/v1/transit/hmac/" + key;
}

std::string describe_failure(const client::reply& r) {
  return "HTTP " + std::to_string(r.status) + ": " + r.body;
}

// The ciphertext the decrypt runs replay: one encrypt of `plaintext` before the load starts.
std::expected<std::string, std::string> encrypt_once(const client::endpoint& ep, const std::string& key,
                                                     const bytes& plaintext) {
  try {
    client::broker_client c(ep);
    auto r = c.request("POST", "/v1/transit/encrypt/" + key, json_body("plaintext", base64_encode(plaintext)));
    if (r.status != 200) return std::unexpected("encrypt before decrypt: " + describe_failure(r));
    return std::string(json::parse(r.body).at("data").at("ciphertext").as_string());
  } catch (const std::exception& e) {
    return std::unexpected(std::string("encrypt before decrypt: ") + e.what());
  }
}

std::expected<std::string, std::string> request_body(const broker_target_options& o) {
  bytes input = random_input(input_size(o.op));
  if (o.op == operation::random) return "{}";
  if (is_encrypt(o.op)) return json_body("plaintext", base64_encode(input));
  if (!is_decrypt(o.op)) return json_body("input", base64_encode(input));  // sign, hmac
  auto ciphertext = encrypt_once(o.endpoint, o.key, input);
  if (!ciphertext) return std::unexpected(ciphertext.error());
  return json_body("ciphertext", *ciphertext);
}

}  // namespace

std::expected<broker_target, std::string> broker_target::prepare(const broker_target_options& o) {
  auto body = request_body(o);
  if (!body) return std::unexpected(body.error());
  broker_target t;
  t.endpoint_ = o.endpoint;
  t.path_ = route(o.op, o.key);
  t.body_ = std::move(*body);
  return t;
}

call_fn broker_target::make_call() const {
  // std::function must be copyable: the connection lives behind a shared_ptr.
  auto client = std::make_shared<client::broker_client>(endpoint_);
  return [client, path = path_, body = body_]() -> std::optional<std::string> {
    auto r = client->request("POST", path, body);  // transport failures throw: the driver counts them
    if (r.status == 200) return std::nullopt;
    return describe_failure(r);
  };
}

}  // namespace hsmb::bench
