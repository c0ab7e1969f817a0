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
inline constexpr unsigned long ckr_object_exists = ckr_broker_base + 10;   // import: that label is taken
inline constexpr unsigned long ckr_no_cluster_key = ckr_broker_base + 11;  // replication: token not enrolled
inline constexpr unsigned long ckr_copy_mismatch = ckr_broker_base + 12;   // replication: a copy is another key

// Where a call failed. The worker relays the token's CKR_* (or a worker-side code above); the
// broker's own findings about the path to the HSM have no CKR and are told apart here.
enum class fault : unsigned char {
  device,               // the HSM or its module answered `ckr`
  worker_crashed,       // the worker exited, or sent what the protocol does not allow
  call_timeout,         // timeouts.call passed: the worker was killed
  worker_unavailable,   // no worker running (starting, down, released)
  gave_up,              // the request's own deadline passed; the worker keeps working
  known_answer_failed,  // the member answered, wrongly (canary check)
  malformed_reply,      // a reply that does not decode as its operation's
};

struct hsm_error {
  unsigned long ckr = 0;  // when where == fault::device
  std::string message;
  fault where = fault::device;
};

inline hsm_error broker_fault(fault where, std::string message) { return {0, std::move(message), where}; }

// What a failed call means for the request that made it (member_pool decides on this).
enum class hsm_verdict {
  member_failed,   // the member (or the way to it) is broken: another may answer
  key_missing,     // this member lacks the object: another holder may have it
  turned_away,     // the HSM is overloaded (CKR_FUNCTION_CANCELED): another may take it
  out_of_time,     // the request's deadline passed
  tag_mismatch,    // the ciphertext failed authentication
  bad_input,       // the data does not suit the key or mechanism
  unsupported,     // the token lacks the mechanism or function
  rejected,        // any other refusal: the broker cannot interpret it
};
hsm_verdict classify(const hsm_error& e);

template <class T>
using hsm_result = std::expected<T, hsm_error>;

// "CKR_DEVICE_ERROR", "CKR_0x80000010" for unknown codes, broker codes by their meaning.
std::string ckr_name(unsigned long ckr);
// ckr_name for device errors, "HSMB_CALL_TIMEOUT" and the like for the broker's findings.
std::string error_name(const hsm_error& e);
// "message (NAME)" for logs and answers; the message alone when it names the code already
// ("C_Sign: CKR_DEVICE_ERROR"), so the name is not printed twice.
std::string with_name(std::string_view message, std::string_view name);
std::string with_name(const hsm_error& e);

// A device-class error means the member (or its connection) is broken: the worker is replaced.
// Everything else (bad data, failed tag check, wrong key) is the caller's problem.
bool is_device_error(unsigned long ckr);
bool is_device_error(const hsm_error& e);
// The token refused the PIN: retrying with the same PIN would lock the user out.
bool pin_refused(const hsm_error& e);

}  // namespace hsmb
