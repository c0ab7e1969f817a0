// Which values of a request or response never reach the audit trail in clear: plaintexts,
// ciphertexts, inputs, signatures, MACs, contexts, associated data, random bytes, sums and tokens,
// at any depth (batch_input and batch_results entries included).
#pragma once

#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "api/audit/audit_key.h"

namespace hsmb::api::audit {

bool is_secret_field(std::string_view name);
// Appends v's JSON text with every secret field's value replaced by key.hash(value): a string is
// hashed as it is (what audit-hash of the same string gives); any other value as its JSON text.
// Written straight from the parsed value: no copy of it is made to redact.
void append_redacted(std::string& out, const boost::json::value& v, const audit_key& key);
void append_redacted(std::string& out, const boost::json::object& o, const audit_key& key);

}  // namespace hsmb::api::audit
