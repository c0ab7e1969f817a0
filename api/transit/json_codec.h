// JSON in and out of the Transit API: reading request fields with clear errors, and writing
// key info, member detail and error bodies the way Vault clients expect them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "broker/error.h"
#include "broker/keys/catalog.h"
#include "broker/member.h"
#include "common/bytes.h"

namespace hsmb::api {

// Parses a request body: empty means {}; anything but an object is a 400.
broker_result<boost::json::object> parse_body(std::string_view body);

// Field readers: absent gives nullopt (or the default); a wrong type is a 400 naming the field.
broker_result<std::optional<std::string>> get_string(const boost::json::object& o, std::string_view field);
broker_result<std::optional<std::uint64_t>> get_uint(const boost::json::object& o, std::string_view field);  // number or numeric string
broker_result<std::optional<bool>> get_bool(const boost::json::object& o, std::string_view field);           // bool or "true"/"false"
// Base64 field (plaintext, input, associated_data); absent gives empty.
broker_result<secure_bytes> get_base64(const boost::json::object& o, std::string_view field, bool required);

std::string error_body(std::string_view message);
std::string data_body(const boost::json::object& data);  // {"data":…}

boost::json::object key_info_json(const key_entry& key);
boost::json::object member_json(const member_snapshot& m);
std::string rfc3339(std::chrono::system_clock::time_point t);

}  // namespace hsmb::api
