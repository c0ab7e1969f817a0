// Which values of a request or response never reach the audit trail in clear: plaintexts,
// ciphertexts, inputs, signatures, MACs, contexts, associated data, random bytes, sums and tokens,
// at any depth (batch_input and batch_results entries included).
#pragma once

#include <string_view>

#include <boost/json/value.hpp>

#include "api/audit/audit_key.h"

namespace hsmb::api::audit {

bool is_secret_field(std::string_view name);
// Replaces, in place, every secret field's value with key.hash(value): a string is hashed as it
// is (what audit-hash of the same string gives); any other value as its JSON text.
void redact(boost::json::value& v, const audit_key& key);

}  // namespace hsmb::api::audit
