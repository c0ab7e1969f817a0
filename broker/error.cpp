#include "broker/error.h"

namespace hsmb {

std::string_view to_string(error_kind k) {
  switch (k) {
    case error_kind::invalid_input: return "invalid_input";
    case error_kind::not_found: return "not_found";
    case error_kind::unavailable: return "unavailable";
    case error_kind::overloaded: return "overloaded";
    case error_kind::denied: return "denied";
    case error_kind::internal: return "internal";
  }
  return "internal";
}

std::string_view to_string(error_origin o) {
  switch (o) {
    case error_origin::caller: return "caller";
    case error_origin::device: return "device";
    case error_origin::transport: return "transport";
    case error_origin::broker: return "broker";
  }
  return "broker";
}

}  // namespace hsmb
