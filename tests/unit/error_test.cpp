// The broker's error kinds: how an HSM's answer is classified, and how a kind becomes HTTP.
#include <doctest/doctest.h>

#include "api/transit/http_status.h"
#include "broker/member_pool.h"
#include "hsm_backends/hsm_error.h"

using namespace hsmb;

namespace {
hsm_error device(unsigned long ckr) { return {ckr, "from the token"}; }
}  // namespace

TEST_CASE("a transport fault is told apart from the token's codes, and named as before") {
  auto timeout = broker_fault(fault::call_timeout, "did not answer");
  CHECK(timeout.ckr == 0);
  CHECK(error_name(timeout) == "HSMB_CALL_TIMEOUT");
  CHECK(error_name(broker_fault(fault::worker_crashed, "")) == "HSMB_WORKER_CRASHED");
  CHECK(error_name(broker_fault(fault::known_answer_failed, "")) == "HSMB_KNOWN_ANSWER_FAILED");
  CHECK(error_name(broker_fault(fault::gave_up, "")) == "HSMB_REQUEST_DEADLINE");
  CHECK(error_name(device(0x30)) == "CKR_DEVICE_ERROR");
  CHECK(is_device_error(timeout));
  CHECK(is_device_error(broker_fault(fault::worker_unavailable, "")));
  CHECK_FALSE(is_device_error(broker_fault(fault::gave_up, "")));  // the request's clock, not the member
  CHECK(error_name(broker_fault(fault::malformed_reply, "")) == "HSMB_MALFORMED_REPLY");
  CHECK_FALSE(is_device_error(broker_fault(fault::malformed_reply, "")));  // a 500, no new worker
  CHECK(pin_refused(device(0xA0)));                                // CKR_PIN_INCORRECT
  CHECK_FALSE(pin_refused(broker_fault(fault::worker_crashed, "")));
}

TEST_CASE("classification decides failover: member failures and missing objects go elsewhere") {
  CHECK(classify(device(0x30)) == hsm_verdict::member_failed);
  CHECK(classify(broker_fault(fault::worker_crashed, "")) == hsm_verdict::member_failed);
  CHECK(classify(broker_fault(fault::gave_up, "")) == hsm_verdict::out_of_time);
  CHECK(classify(device(ckr_object_not_found)) == hsm_verdict::key_missing);
  CHECK(classify(device(0x60)) == hsm_verdict::key_missing);  // CKR_KEY_HANDLE_INVALID
  CHECK(classify(device(0x50)) == hsm_verdict::turned_away);  // CKR_FUNCTION_CANCELED
  CHECK(classify(device(0x40)) == hsm_verdict::tag_mismatch);  // CKR_ENCRYPTED_DATA_INVALID
  CHECK(classify(device(0x21)) == hsm_verdict::bad_input);     // CKR_DATA_LEN_RANGE
  CHECK(classify(device(0x70)) == hsm_verdict::unsupported);   // CKR_MECHANISM_INVALID
  CHECK(classify(device(0x63)) == hsm_verdict::rejected);      // CKR_KEY_TYPE_INCONSISTENT
  CHECK(try_elsewhere(device(0x30)));
  CHECK(try_elsewhere(device(0x50)));
  CHECK_FALSE(try_elsewhere(device(0x40)));
}

TEST_CASE("an HSM's refusal becomes a broker error with its origin, and the kind decides the status") {
  auto tag = caller_error(device(0x40));
  CHECK(tag.kind == error_kind::invalid_input);
  CHECK(tag.origin == error_origin::caller);
  CHECK(tag.message == "cipher: message authentication failed");
  auto busy = caller_error(device(0x50));
  CHECK(busy.kind == error_kind::overloaded);
  CHECK(busy.origin == error_origin::device);
  auto unsupported = caller_error(device(0x70));
  CHECK(unsupported.kind == error_kind::invalid_input);
  CHECK(unsupported.origin == error_origin::device);
  CHECK(unsupported.message.find("CKR_MECHANISM_INVALID") != std::string::npos);
  CHECK(caller_error(device(0x63)).kind == error_kind::internal);
  CHECK(caller_error(broker_fault(fault::call_timeout, "")).origin == error_origin::transport);

  CHECK(api::http_status(error_kind::invalid_input) == 400);
  CHECK(api::http_status(error_kind::denied) == 403);
  CHECK(api::http_status(error_kind::not_found) == 404);
  CHECK(api::http_status(error_kind::overloaded) == 429);
  CHECK(api::http_status(error_kind::internal) == 500);
  CHECK(api::http_status(error_kind::unavailable) == 503);
}
