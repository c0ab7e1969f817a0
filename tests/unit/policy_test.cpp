// Vault-style ACLs: exact paths, '*' globs, '+' segments, Vault's priority, deny, no match.
#include <doctest/doctest.h>

#include "api/auth/policy.h"

using namespace hsmb;
using namespace hsmb::api;
using cap = vault_capability;
namespace bits = acl_bits;

TEST_CASE("an exact path matches only itself") {
  acl a({{"transit/encrypt/k", bits::update}});
  CHECK(a.allows("transit/encrypt/k", cap::update));
  CHECK_FALSE(a.allows("transit/encrypt/k2", cap::update));
  CHECK_FALSE(a.allows("transit/encrypt", cap::update));
  CHECK_FALSE(a.allows("transit/encrypt/k", cap::read));
}

TEST_CASE("'*' is a prefix glob, also across segments") {
  acl a({{"transit/encrypt/billing-*", bits::update}});
  CHECK(a.allows("transit/encrypt/billing-a", cap::update));
  CHECK(a.allows("transit/encrypt/billing-", cap::update));
  CHECK(a.allows("transit/encrypt/billing-a/more", cap::update));
  CHECK_FALSE(a.allows("transit/encrypt/payroll", cap::update));
  CHECK_FALSE(a.allows("transit/decrypt/billing-a", cap::update));
  acl all({{"*", bits::read}});
  CHECK(all.allows("metrics", cap::read));
  CHECK(all.allows("sys/mounts", cap::read));
}

TEST_CASE("'+' is exactly one segment") {
  acl a({{"transit/+/billing", bits::update}});
  CHECK(a.allows("transit/encrypt/billing", cap::update));
  CHECK(a.allows("transit/decrypt/billing", cap::update));
  CHECK_FALSE(a.allows("transit/encrypt/x/billing", cap::update));
  CHECK_FALSE(a.allows("transit/billing", cap::update));
  CHECK_FALSE(a.allows("transit/encrypt/billing/x", cap::update));
  acl b({{"transit/keys/+/*", bits::update}});
  CHECK(b.allows("transit/keys/k/rotate", cap::update));
  CHECK_FALSE(b.allows("transit/keys/k", cap::update));
}

TEST_CASE("the most specific rule wins, by Vault's priority") {
  SUBCASE("an exact path over any glob") {
    acl a({{"transit/*", bits::update}, {"transit/encrypt/k", bits::read}});
    CHECK(a.capabilities("transit/encrypt/k") == bits::read);
    CHECK(a.capabilities("transit/encrypt/j") == bits::update);
  }
  SUBCASE("the longer glob prefix") {
    acl a({{"transit/*", bits::update}, {"transit/encrypt/*", bits::read}});
    CHECK(a.capabilities("transit/encrypt/k") == bits::read);
    CHECK(a.capabilities("transit/decrypt/k") == bits::update);
  }
  SUBCASE("a later first wildcard wins") {
    acl a({{"transit/+/k", bits::read}, {"transit/encrypt/+", bits::update}});
    CHECK(a.capabilities("transit/encrypt/k") == bits::update);
    CHECK(a.capabilities("transit/decrypt/k") == bits::read);
  }
  SUBCASE("at the same position, a path without '*' wins") {
    acl a({{"transit/encrypt/+/*", bits::read}, {"transit/encrypt/+/x", bits::update}});
    CHECK(a.capabilities("transit/encrypt/k/x") == bits::update);
  }
  SUBCASE("then fewer '+' segments") {
    acl a({{"transit/+/+", bits::read}, {"transit/+/k", bits::update}});
    CHECK(a.capabilities("transit/encrypt/k") == bits::update);
  }
  SUBCASE("a glob against a '+' path: the first wildcard's position decides") {
    acl a({{"transit/encrypt/*", bits::read}, {"transit/+/k", bits::update}});
    CHECK(a.capabilities("transit/encrypt/k") == bits::read);
    acl b({{"tr*", bits::read}, {"transit/+/k", bits::update}});
    CHECK(b.capabilities("transit/encrypt/k") == bits::update);
  }
}

TEST_CASE("deny overrides every capability on the same path, from any policy") {
  std::map<std::string, std::vector<policy_rule>> policies{
      {"app", {{"transit/encrypt/*", bits::update | bits::sudo}}},
      {"fence", {{"transit/encrypt/*", bits::deny}, {"transit/encrypt/open", bits::update}}}};
  acl a({"app", "fence"}, policies);
  CHECK_FALSE(a.allows("transit/encrypt/k", cap::update));
  CHECK_FALSE(a.allows("transit/encrypt/k", cap::sudo));
  CHECK(a.capabilities("transit/encrypt/k") == bits::deny);
  CHECK(a.allows("transit/encrypt/open", cap::update));  // a more specific path is its own rule, as in Vault
  acl alone({"app"}, policies);
  CHECK(alone.allows("transit/encrypt/k", cap::update));
}

TEST_CASE("policies merge per path; nothing matching allows nothing") {
  std::map<std::string, std::vector<policy_rule>> policies{{"r", {{"transit/keys/*", bits::read}}},
                                                           {"l", {{"transit/keys/*", bits::list}}}};
  acl a({"r", "l"}, policies);
  CHECK(a.allows("transit/keys/k", cap::read));
  CHECK(a.allows("transit/keys/k", cap::list));
  CHECK_FALSE(a.allows("transit/keys/k", cap::del));
  CHECK_FALSE(a.allows("sys/mounts", cap::read));
  acl none;
  CHECK(none.capabilities("transit/keys/k") == 0);
  CHECK_FALSE(none.allows("", cap::read));
}

TEST_CASE("a request's policy path drops /v1/") {
  CHECK(policy_path(split_path("/v1/transit/encrypt/k")) == "transit/encrypt/k");
  CHECK(policy_path(split_path("/metrics")) == "metrics");
  CHECK(policy_path(split_path("//v1//sys/health/")) == "sys/health");
}
