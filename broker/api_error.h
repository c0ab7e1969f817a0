// What the request path returns instead of throwing: an HTTP status and a message for the caller.
#pragma once

#include <expected>
#include <string>

namespace hsmb {

struct api_error {
  unsigned status = 500;
  std::string message;
};

template <class T>
using api_result = std::expected<T, api_error>;

inline std::unexpected<api_error> fail(unsigned status, std::string message) {
  return std::unexpected(api_error{status, std::move(message)});
}

}  // namespace hsmb
