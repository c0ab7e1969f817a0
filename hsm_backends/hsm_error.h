// Errors from an HSM backend: the PKCS#11 return value (CKR_*) and a message without secrets.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace hsmb {

// Codes in the vendor-defined range for failures that have no CKR_* of their own.
inline constexpr unsigned long ckr_broker_base = 0x80000000UL | 0x48534d00UL;  // CKR_VENDOR_DEFINED | "HSM"
inline constexpr unsigned long ckr_object_not_found = ckr_broker_base + 1;  // no object with that label
inline constexpr unsigned long ckr_token_not_found = ckr_broker_base + 2;   // configured token/slot absent
inline constexpr unsigned long ckr_module_load_failed = ckr_broker_base + 3;
inline constexpr unsigned long ckr_bad_request = ckr_broker_base + 4;       // malformed request frame
inline constexpr unsigned long ckr_worker_crashed = ckr_broker_base + 5;    // broker side: worker exited
inline constexpr unsigned long ckr_call_timeout = ckr_broker_base + 6;      // broker side: timeouts.call passed
inline constexpr unsigned long ckr_worker_unavailable = ckr_broker_base + 7; // broker side: no worker running
inline constexpr unsigned long ckr_known_answer_failed = ckr_broker_base + 8; // broker side: canary check failed
inline constexpr unsigned long ckr_gave_up = ckr_broker_base + 9;  // broker side: the request's own deadline passed
inline constexpr unsigned long ckr_object_exists = ckr_broker_base + 10;   // import: that label is taken
inline constexpr unsigned long ckr_no_cluster_key = ckr_broker_base + 11;  // replication: token not enrolled
inline constexpr unsigned long ckr_copy_mismatch = ckr_broker_base + 12;   // replication: a copy is another key
inline constexpr unsigned long ckr_malformed_reply = ckr_broker_base + 13; // broker side: a reply that does not decode

struct hsm_error {
  unsigned long ckr = 0;
  std::string message;
};

template <class T>
using hsm_result = std::expected<T, hsm_error>;

// "CKR_DEVICE_ERROR", "CKR_0x80000010" for unknown codes, broker codes by their meaning.
std::string ckr_name(unsigned long ckr);

// A device-class error means the member (or its connection) is broken: the worker is replaced.
// Everything else (bad data, failed tag check, wrong key) is the caller's problem.
bool is_device_error(unsigned long ckr);

}  // namespace hsmb
