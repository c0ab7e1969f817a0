// Test helper: the value of an hsm_result, or the test fails with the CKR name and message.
// Include after doctest.
#pragma once

#include <utility>

#include "hsm_backends/hsm_error.h"

namespace hsmb::test {

template <class T>
T must(hsm_result<T> r) {
  if (!r) FAIL(ckr_name(r.error().ckr) << ": " << r.error().message);
  return std::move(*r);
}
inline void must(hsm_result<void> r) {
  if (!r) FAIL(ckr_name(r.error().ckr) << ": " << r.error().message);
}

}  // namespace hsmb::test
