// The Transit JSON codec: body parsing, typed fields with clear errors, key info shape.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "api/transit/json_codec.h"

using namespace hsmb;
using namespace hsmb::api;
namespace json = boost::json;

TEST_CASE("bodies must be JSON objects") {
  CHECK(parse_body("")->empty());
  CHECK(parse_body("  \n")->empty());
  CHECK(parse_body(R"({"a":1})")->contains("a"));
  auto bad = parse_body("{not json");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().kind == error_kind::invalid_input);
  CHECK(bad.error().message.starts_with("failed to parse JSON input"));
  CHECK(parse_body("[1,2]").error().kind == error_kind::invalid_input);
}

TEST_CASE("typed fields") {
  auto o = *parse_body(R"({"s":"x","n":3,"ns":"4","neg":-1,"f":1.5,"b":true,"bs":"false","b64":"aGk=","bad64":"!!"})");
  CHECK(**get_string(o, "s") == "x");
  CHECK_FALSE(*get_string(o, "missing"));
  CHECK(get_string(o, "n").error().message == "field \"n\" must be a string");
  CHECK(**get_uint(o, "n") == 3u);
  CHECK(**get_uint(o, "ns") == 4u);
  CHECK_FALSE(get_uint(o, "neg"));
  CHECK_FALSE(get_uint(o, "f"));
  CHECK(**get_bool(o, "b"));
  CHECK_FALSE(**get_bool(o, "bs"));
  CHECK_FALSE(get_bool(o, "n"));
  auto b64 = get_base64(o, "b64", true);
  REQUIRE(b64);
  CHECK(std::string(b64->begin(), b64->end()) == "hi");
  CHECK(get_base64(o, "bad64", true).error().message == "field \"bad64\" is not valid base64");
  CHECK(get_base64(o, "absent", true).error().message == "missing field \"absent\"");
  CHECK(get_base64(o, "absent", false)->empty());
}

TEST_CASE("error and data envelopes") {
  CHECK(error_body("no \"such\" key") == R"({"errors":["no \"such\" key"]})");
  // Bytes from a client's path that are not UTF-8 still make a body every JSON parser reads.
  for (std::string bad : {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "ok\x80"}) {
    auto body = error_body("unsupported path /v1/" + bad);
    boost::system::error_code ec;
    auto parsed = boost::json::parse(body, ec);
    CHECK_MESSAGE(!ec, body);
    CHECK(body.find("\xef\xbf\xbd") != std::string::npos);
  }
  CHECK(error_body("caf\xc3\xa9 \xf0\x9f\x94\x91") == "{\"errors\":[\"caf\xc3\xa9 \xf0\x9f\x94\x91\"]}");  // valid UTF-8 is kept
  CHECK(data_body(json::object{{"a", 1}}) == R"({"data":{"a":1}})");
}

TEST_CASE("key info follows Vault's shape") {
  key_entry k;
  k.name = "orders";
  k.meta.type = key_type::aes256_gcm96;
  k.meta.latest_version = 2;
  k.meta.created = {{1, 1700000000}, {2, 1700000100}};
  auto info = key_info_json(k);
  CHECK(info.at("type").as_string() == "aes256-gcm96");
  CHECK(info.at("latest_version").to_number<int>() == 2);
  CHECK(info.at("supports_encryption").as_bool());
  CHECK_FALSE(info.at("supports_signing").as_bool());
  CHECK(info.at("keys").as_object().at("2").to_number<std::int64_t>() == 1700000100);
}

TEST_CASE("timestamps are RFC 3339 UTC") {
  CHECK(rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(0))) == "1970-01-01T00:00:00Z");
}
