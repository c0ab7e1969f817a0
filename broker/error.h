// What went wrong on the request path, in the broker's terms. No HTTP here: api/ maps each kind
// to a status at the edge (api/transit/http_status.h), and the PKCS#11 module or the KMS plugin
// may map it otherwise.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace hsmb {

// What the caller can do about it: fix the request, stop asking, try again later, or report it.
enum class error_kind {
  invalid_input,  // the request is wrong (bad field, wrong key type, failed tag check)
  not_found,      // the key is on no member (every member that could hold it was read)
  unavailable,    // no member can answer now (down, unread, deadline passed): try again
  overloaded,     // the HSMs turned the request away: back off
  denied,         // the caller may not do this
  internal,       // the broker or an HSM misbehaved: a bug or a broken device
};

// Whose doing it was: the caller's request, an HSM's answer, the path to an HSM (a worker, a
// deadline), or the broker itself. For logs, metrics and audit; the kind decides the answer.
enum class error_origin { caller, device, transport, broker };

std::string_view to_string(error_kind k);
std::string_view to_string(error_origin o);

struct broker_error {
  error_kind kind = error_kind::internal;
  error_origin origin = error_origin::broker;
  std::string message;  // for the caller: never a secret
};

template <class T>
using broker_result = std::expected<T, broker_error>;

inline std::unexpected<broker_error> fail(error_kind kind, std::string message, error_origin origin) {
  return std::unexpected(broker_error{kind, origin, std::move(message)});
}
inline std::unexpected<broker_error> invalid_input(std::string message, error_origin o = error_origin::caller) {
  return fail(error_kind::invalid_input, std::move(message), o);
}
inline std::unexpected<broker_error> not_found(std::string message) {
  return fail(error_kind::not_found, std::move(message), error_origin::caller);
}
inline std::unexpected<broker_error> unavailable(std::string message, error_origin o = error_origin::device) {
  return fail(error_kind::unavailable, std::move(message), o);
}
inline std::unexpected<broker_error> overloaded(std::string message) {
  return fail(error_kind::overloaded, std::move(message), error_origin::device);
}
inline std::unexpected<broker_error> denied(std::string message) {
  return fail(error_kind::denied, std::move(message), error_origin::caller);
}
inline std::unexpected<broker_error> internal(std::string message, error_origin o = error_origin::broker) {
  return fail(error_kind::internal, std::move(message), o);
}

}  // namespace hsmb
