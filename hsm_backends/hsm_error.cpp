#include "hsm_backends/hsm_error.h"

#include "hsm_backends/pkcs11/p11.h"

#include <array>
#include <cstdio>
#include <utility>

namespace hsmb {
namespace {

#define HSMB_CKR(name) std::pair<unsigned long, std::string_view>{name, #name}
constexpr std::array ckr_names{
    HSMB_CKR(CKR_OK), HSMB_CKR(CKR_CANCEL), HSMB_CKR(CKR_HOST_MEMORY), HSMB_CKR(CKR_SLOT_ID_INVALID),
    HSMB_CKR(CKR_GENERAL_ERROR), HSMB_CKR(CKR_FUNCTION_FAILED), HSMB_CKR(CKR_ARGUMENTS_BAD),
    HSMB_CKR(CKR_ATTRIBUTE_READ_ONLY), HSMB_CKR(CKR_ATTRIBUTE_SENSITIVE),
    HSMB_CKR(CKR_ATTRIBUTE_TYPE_INVALID), HSMB_CKR(CKR_ATTRIBUTE_VALUE_INVALID),
    HSMB_CKR(CKR_DATA_INVALID), HSMB_CKR(CKR_DATA_LEN_RANGE), HSMB_CKR(CKR_DEVICE_ERROR),
    HSMB_CKR(CKR_DEVICE_MEMORY), HSMB_CKR(CKR_DEVICE_REMOVED), HSMB_CKR(CKR_ENCRYPTED_DATA_INVALID),
    HSMB_CKR(CKR_ENCRYPTED_DATA_LEN_RANGE), HSMB_CKR(CKR_FUNCTION_CANCELED),
    HSMB_CKR(CKR_FUNCTION_NOT_SUPPORTED), HSMB_CKR(CKR_KEY_HANDLE_INVALID), HSMB_CKR(CKR_KEY_SIZE_RANGE),
    HSMB_CKR(CKR_KEY_TYPE_INCONSISTENT), HSMB_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED),
    HSMB_CKR(CKR_KEY_NOT_WRAPPABLE), HSMB_CKR(CKR_KEY_UNEXTRACTABLE), HSMB_CKR(CKR_MECHANISM_INVALID),
    HSMB_CKR(CKR_MECHANISM_PARAM_INVALID), HSMB_CKR(CKR_OBJECT_HANDLE_INVALID),
    HSMB_CKR(CKR_OPERATION_ACTIVE), HSMB_CKR(CKR_OPERATION_NOT_INITIALIZED), HSMB_CKR(CKR_PIN_INCORRECT),
    HSMB_CKR(CKR_PIN_LOCKED), HSMB_CKR(CKR_SESSION_CLOSED), HSMB_CKR(CKR_SESSION_COUNT),
    HSMB_CKR(CKR_SESSION_HANDLE_INVALID), HSMB_CKR(CKR_SESSION_READ_ONLY), HSMB_CKR(CKR_SIGNATURE_INVALID),
    HSMB_CKR(CKR_SIGNATURE_LEN_RANGE), HSMB_CKR(CKR_TEMPLATE_INCOMPLETE),
    HSMB_CKR(CKR_TEMPLATE_INCONSISTENT), HSMB_CKR(CKR_TOKEN_NOT_PRESENT),
    HSMB_CKR(CKR_TOKEN_NOT_RECOGNIZED), HSMB_CKR(CKR_USER_ALREADY_LOGGED_IN),
    HSMB_CKR(CKR_USER_NOT_LOGGED_IN), HSMB_CKR(CKR_USER_PIN_NOT_INITIALIZED),
    HSMB_CKR(CKR_WRAPPED_KEY_INVALID), HSMB_CKR(CKR_WRAPPING_KEY_HANDLE_INVALID),
    HSMB_CKR(CKR_RANDOM_NO_RNG), HSMB_CKR(CKR_BUFFER_TOO_SMALL),
    HSMB_CKR(CKR_CRYPTOKI_NOT_INITIALIZED), HSMB_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    std::pair<unsigned long, std::string_view>{ckr_object_not_found, "HSMB_OBJECT_NOT_FOUND"},
    std::pair<unsigned long, std::string_view>{ckr_token_not_found, "HSMB_TOKEN_NOT_FOUND"},
    std::pair<unsigned long, std::string_view>{ckr_module_load_failed, "HSMB_MODULE_LOAD_FAILED"},
    std::pair<unsigned long, std::string_view>{ckr_bad_request, "HSMB_BAD_REQUEST"},
    std::pair<unsigned long, std::string_view>{ckr_object_exists, "HSMB_OBJECT_EXISTS"},
    std::pair<unsigned long, std::string_view>{ckr_no_cluster_key, "HSMB_NO_CLUSTER_KEY"},
    std::pair<unsigned long, std::string_view>{ckr_copy_mismatch, "HSMB_COPY_MISMATCH"},
};
#undef HSMB_CKR

}  // namespace

std::string ckr_name(unsigned long ckr) {
  for (auto& [code, name] : ckr_names)
    if (code == ckr) return std::string(name);
  char buf[32];
  std::snprintf(buf, sizeof buf, "CKR_0x%08lX", ckr);
  return buf;
}

bool is_device_error(unsigned long ckr) {
  switch (ckr) {
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_MEMORY:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SLOT_ID_INVALID:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_SESSION_COUNT:
    case CKR_GENERAL_ERROR:
    case CKR_FUNCTION_FAILED:
    case CKR_HOST_MEMORY:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_OPERATION_ACTIVE:
    case ckr_token_not_found:
    case ckr_module_load_failed:
      return true;
    default:
      // Vendor-defined codes (link loss, HA-group errors...) are treated as the device's: a fresh
      // worker is the safe answer to a code the broker cannot interpret.
      return ckr >= CKR_VENDOR_DEFINED && (ckr & ~0xFFUL) != ckr_broker_base;
  }
}

bool is_device_error(const hsm_error& e) {
  switch (e.where) {
    case fault::device: return is_device_error(e.ckr);
    case fault::gave_up: return false;  // the request ran out of time, not the member
    case fault::malformed_reply: return false;  // answered as a broker fault (500), as before the table
    default: return true;               // a worker gone, hung or wrong: a fresh one is due
  }
}

std::string error_name(const hsm_error& e) {
  switch (e.where) {
    case fault::device: return ckr_name(e.ckr);
    case fault::worker_crashed: return "HSMB_WORKER_CRASHED";
    case fault::call_timeout: return "HSMB_CALL_TIMEOUT";
    case fault::worker_unavailable: return "HSMB_WORKER_UNAVAILABLE";
    case fault::gave_up: return "HSMB_REQUEST_DEADLINE";
    case fault::known_answer_failed: return "HSMB_KNOWN_ANSWER_FAILED";
    case fault::malformed_reply: return "HSMB_MALFORMED_REPLY";
  }
  return ckr_name(e.ckr);
}

std::string with_name(std::string_view message, std::string_view name) {
  if (message.find(name) != std::string_view::npos) return std::string(message);
  return std::string(message) + " (" + std::string(name) + ")";
}

std::string with_name(const hsm_error& e) { return with_name(e.message, error_name(e)); }

bool pin_refused(const hsm_error& e) {
  return e.where == fault::device &&
         (e.ckr == CKR_PIN_INCORRECT || e.ckr == CKR_PIN_LOCKED || e.ckr == CKR_PIN_EXPIRED);
}

hsm_verdict classify(const hsm_error& e) {
  if (e.where == fault::gave_up) return hsm_verdict::out_of_time;
  if (is_device_error(e)) return hsm_verdict::member_failed;
  switch (e.ckr) {
    case ckr_object_not_found:
    case CKR_KEY_HANDLE_INVALID:
      return hsm_verdict::key_missing;
    case CKR_FUNCTION_CANCELED:
      return hsm_verdict::turned_away;
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
      return hsm_verdict::tag_mismatch;
    case CKR_DATA_INVALID:
    case CKR_DATA_LEN_RANGE:
    case CKR_ARGUMENTS_BAD:
      return hsm_verdict::bad_input;
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_FUNCTION_NOT_SUPPORTED:
      return hsm_verdict::unsupported;
    default:
      return hsm_verdict::rejected;
  }
}

}  // namespace hsmb
