// hsm-kms-plugin's gRPC-free parts: key_id derivation, the Transit ciphertext's version, the
// command line.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <set>

#include "kms_plugin/command_line.h"
#include "kms_plugin/key_id.h"

using namespace hsmb::kms;

TEST_CASE("key_id: stable, 32 hex digits, different for every name, version and creation") {
  auto id = make_key_id("kek", 1, 1764650000);
  CHECK(id == make_key_id("kek", 1, 1764650000));
  CHECK(id.size() == 32);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  std::set<std::string> ids;
  for (std::uint32_t v = 1; v <= 100; ++v) ids.insert(make_key_id("kek", v, 1764650000));
  ids.insert(make_key_id("kek2", 1, 1764650000));
  ids.insert(make_key_id("kek", 1, 1764650001));  // the same name and version, made again later
  ids.insert(make_key_id("ke", 11, 1764650000));  // no ambiguity between name and version
  CHECK(ids.size() == 103);
}

TEST_CASE("ciphertext_version: vault:vN: only") {
  CHECK(ciphertext_version("vault:v1:abc") == 1u);
  CHECK(ciphertext_version("vault:v42:") == 42u);
  CHECK(!ciphertext_version("vault:v0:abc"));
  CHECK(!ciphertext_version("vault:v:abc"));
  CHECK(!ciphertext_version("vault:v1"));
  CHECK(!ciphertext_version("vault:v1x:abc"));
  CHECK(!ciphertext_version("vault:v99999999999:abc"));
  CHECK(!ciphertext_version("k8s:enc:kms:v2"));
  CHECK(!ciphertext_version(""));
}

TEST_CASE("command line: required options, unix:// prefixes, bad key names, unknown arguments") {
  auto o = parse_command_line({"--listen", "unix:///run/k.sock", "--broker-socket", "/run/b.sock", "--key", "kek"});
  REQUIRE(o);
  CHECK(o->listen == "/run/k.sock");
  CHECK(o->broker_socket == "/run/b.sock");
  CHECK(o->key == "kek");
  CHECK(o->token_file.empty());
  CHECK(parse_command_line({"--listen", "a", "--broker-socket", "b", "--key", "k", "--token-file", "t"})->token_file == "t");
  CHECK(parse_command_line({"--listen", "a", "--key", "k"}).error() == "--broker-socket is required");
  CHECK(parse_command_line({"--listen", "a", "--broker-socket", "b"}).error() == "--key is required");
  CHECK(parse_command_line({"--broker-socket", "b", "--key", "k"}).error() == "--listen is required");
  CHECK(parse_command_line({"--listen", "a", "--broker-socket", "b", "--key"}).error() == "--key needs a value");
  CHECK(!parse_command_line({"--listen", "a", "--broker-socket", "b", "--key", "../x"}));
  CHECK(!parse_command_line({"--listen", "a", "--broker-socket", "b", "--key", ".hidden"}));
  CHECK(parse_command_line({"--listen", "a", "--broker-socket", "b", "--key", "k", "--verbose"}).error() ==
        "unknown argument \"--verbose\"");
  CHECK(parse_command_line({"--help"})->help);
}
