// Encodings on the request path: base64, durations, "vault:v<N>:" values, key labels, metadata.
#include <doctest/doctest.h>

#include "broker/keys/metadata.h"
#include "broker/keys/versioned_value.h"
#include "common/base64.h"
#include "common/duration.h"

#include <openssl/evp.h>

#include <random>

using namespace hsmb;

// The four-at-a-time codec against OpenSSL's: every length up to 300 (each tail case many times),
// every character of the result replaced by one outside the alphabet, and every non-canonical
// last character.
TEST_CASE("base64 agrees with OpenSSL on every length; a bad character anywhere, or a bad tail, fails") {
  std::mt19937 rng(7);
  for (std::size_t n = 0; n <= 300; ++n) {
    std::vector<std::uint8_t> raw(n);
    for (auto& b : raw) b = static_cast<std::uint8_t>(rng());
    std::string ref(4 * ((n + 2) / 3) + 1, '\0');
    ref.resize(static_cast<std::size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(ref.data()), raw.data(), int(n))));
    auto enc = base64_encode(byte_view(raw.data(), raw.size()));
    REQUIRE(enc == ref);
    auto dec = base64_decode(enc);
    REQUIRE(dec);
    CHECK(std::equal(dec->begin(), dec->end(), raw.begin(), raw.end()));
    auto url = base64url_encode(byte_view(raw.data(), raw.size()));
    CHECK(url.find('=') == std::string::npos);
    auto back = base64url_decode(url);
    REQUIRE(back);
    CHECK(std::equal(back->begin(), back->end(), raw.begin(), raw.end()));
    if (n > 0 && n < 40) {
      for (std::size_t i = 0; i < enc.size() && enc[i] != '='; ++i) {
        auto bad = enc;
        bad[i] = '*';
        CHECK_FALSE(base64_decode(bad));
      }
    }
  }
  CHECK_FALSE(base64_decode("Zh=="));   // tail of 2: the last character's low 4 bits must be 0
  CHECK(base64_decode("Zg=="));
  CHECK_FALSE(base64_decode("Zm9="));   // tail of 3: its low 2 bits
  CHECK(base64_decode("Zm8="));
  CHECK_FALSE(base64url_decode("Zh"));
  CHECK_FALSE(base64url_decode("Zm9vY"));  // 5 characters: no byte count fits
}

TEST_CASE("base64 round trips and rejects non-canonical input") {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    auto enc = base64_encode(as_bytes(s));
    auto dec = base64_decode(enc);
    REQUIRE(dec);
    CHECK(std::string(dec->begin(), dec->end()) == s);
    auto url = base64url_decode(base64url_encode(as_bytes(s)));
    REQUIRE(url);
    CHECK(std::string(url->begin(), url->end()) == s);
  }
  CHECK(base64_encode(as_bytes("foobar")) == "Zm9vYmFy");
  CHECK(base64_encode(as_bytes("fo")) == "Zm8=");
  CHECK_FALSE(base64_decode("Zm8"));     // missing padding
  CHECK_FALSE(base64_decode("Zm9=="));   // bad length
  CHECK_FALSE(base64_decode("Zm9v!A=="));
  CHECK_FALSE(base64_decode("Zm9="));    // non-zero trailing bits
  CHECK_FALSE(base64url_decode("Zm8="));  // JWS form has no padding
  CHECK(hex_encode(as_bytes("\x01\xab")) == "01ab");
}

TEST_CASE("durations") {
  CHECK(parse_duration("250ms") == std::chrono::milliseconds(250));
  CHECK(parse_duration("2s") == std::chrono::seconds(2));
  CHECK(parse_duration("5m") == std::chrono::minutes(5));
  CHECK(parse_duration("1h") == std::chrono::hours(1));
  CHECK_FALSE(parse_duration("1"));
  CHECK_FALSE(parse_duration("s"));
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration("1.5s"));
  CHECK_FALSE(parse_duration("1d"));
  CHECK(format_duration(std::chrono::minutes(5)) == "5m");
  CHECK(format_duration(std::chrono::milliseconds(1500)) == "1500ms");
}

TEST_CASE("vault:v<N>: values") {
  bytes raw{0, 1, 2, 250, 251, 252};
  auto text = format_versioned(3, raw);
  CHECK(text == "vault:v3:AAEC+vv8");
  auto parsed = parse_versioned(text);
  REQUIRE(parsed);
  CHECK(parsed->version == 3u);
  CHECK(bytes(parsed->value.begin(), parsed->value.end()) == raw);

  auto jws = format_versioned(1, raw, value_encoding::base64url);
  CHECK(jws == "vault:v1:AAEC-vv8");
  CHECK(parse_versioned(jws, value_encoding::base64url));
  CHECK_FALSE(parse_versioned(jws));

  for (auto bad : {"", "vault:", "vault:v:AAAA", "vault:v0:AAAA", "vault:v01:AAAA", "vault:vx:AAAA", "vault:v1AAAA",
                   "vault:v1:AA=A", "vault:v99999999999:AAAA", "vault:v-1:AAAA", "vaultv1:AAAA", "VAULT:v1:AAAA"})
    CHECK_MESSAGE(!parse_versioned(bad), bad);
}

TEST_CASE("key labels and names") {
  CHECK(key_object_label("orders", 2) == "hsmb/orders/v2");
  CHECK(key_object_prefix("orders") == "hsmb/orders/");
  CHECK(valid_key_name("orders-2024.v1_x"));
  CHECK_FALSE(valid_key_name(""));
  CHECK_FALSE(valid_key_name(".hidden"));
  CHECK_FALSE(valid_key_name("a/b"));
  CHECK_FALSE(valid_key_name("a b"));
  CHECK_FALSE(valid_key_name(std::string(129, 'a')));
}

TEST_CASE("rotation is due once the latest version is auto_rotate_period old, never for a tombstone or period 0") {
  key_metadata m;
  m.latest_version = 2;
  m.created = {{1, 100}, {2, 1000}};
  CHECK_FALSE(rotation_due(m, 5000));  // off
  m.auto_rotate_period = 60;
  CHECK_FALSE(rotation_due(m, 1059));
  CHECK(rotation_due(m, 1060));
  m.deleted = true;
  CHECK_FALSE(rotation_due(m, 9999));
}

TEST_CASE("key metadata round trips and damaged records are refused") {
  key_metadata m;
  m.type = key_type::ecdsa_p384;
  m.latest_version = 3;
  m.min_decryption_version = 2;
  m.deletion_allowed = true;
  m.created = {{1, 100}, {2, 200}, {3, 300}};
  auto enc = encode_metadata(m);
  auto dec = decode_metadata(enc);
  REQUIRE(dec);
  CHECK(dec->type == key_type::ecdsa_p384);
  CHECK(dec->latest_version == 3u);
  CHECK(dec->min_decryption_version == 2u);
  CHECK(dec->deletion_allowed);
  CHECK(dec->created == m.created);
  CHECK(dec->auto_rotate_period == 0);
  CHECK(dec->certificate_chains.empty());
  m.auto_rotate_period = 86400;
  m.certificate_chains[2] = "-----BEGIN CERTIFICATE-----\n...\n";
  auto with = decode_metadata(encode_metadata(m));
  REQUIRE(with);
  CHECK(with->auto_rotate_period == 86400);
  CHECK(with->certificate_chains == m.certificate_chains);
  CHECK_FALSE(decode_metadata(as_bytes(R"({"type":"hmac","latest_version":1,"min_decryption_version":1,"min_encryption_version":0,"deletion_allowed":false,"created":{},"auto_rotate_period":-5})")));
  CHECK_FALSE(decode_metadata(as_bytes("{}")));
  CHECK_FALSE(decode_metadata(as_bytes("not json")));
  CHECK_FALSE(decode_metadata(as_bytes(R"({"type":"nope","latest_version":1,"min_decryption_version":1,"min_encryption_version":0,"deletion_allowed":false,"created":{}})")));
  CHECK_FALSE(decode_metadata(as_bytes(R"({"type":"hmac","latest_version":1,"min_decryption_version":2,"min_encryption_version":0,"deletion_allowed":false,"created":{}})")));
}
