// auto_rotate_period end to end: two brokers on one SoftHSM2 token (a fleet sharing an HSM)
// rotate a key exactly once per period between them, through the cross-broker claim, and a
// broker started afresh carries on from the key's record on the HSM.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "tests/integration/broker_fixture.h"

using namespace hsmb::test;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

const std::string fleet_yaml = "auto_rotate: { check_interval: 100ms, min_period: 2s }\n";

member_spec shared_member(const softhsm_token& t) {
  return {"hsm-a", softhsm_token::module_path(), t.label(), t.pin(), {{"SOFTHSM2_CONF", t.conf_path()}}};
}

json::object key_info(hsmb::client::broker_client& c, const std::string& name) {
  auto r = call(c, "GET", "/v1/transit/keys/" + name);
  REQUIRE_MESSAGE(r.status == 200, r.error());
  return r.data().as_object();
}

std::uint32_t latest(hsmb::client::broker_client& c, const std::string& name) {
  return static_cast<std::uint32_t>(key_info(c, name).at("latest_version").to_number<std::int64_t>());
}

// Versions' creation times, in version order.
std::vector<std::int64_t> creation_times(hsmb::client::broker_client& c, const std::string& name) {
  std::vector<std::int64_t> out;
  auto keys = key_info(c, name).at("keys").as_object();
  for (std::size_t v = 1; keys.contains(std::to_string(v)); ++v) out.push_back(keys.at(std::to_string(v)).to_number<std::int64_t>());
  return out;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

// Objects labelled exactly `label` on the token.
std::size_t objects_labelled(const softhsm_token& t, const std::string& label) {
  std::string out;
  REQUIRE(run_command("SOFTHSM2_CONF=" + t.conf_path() + " pkcs11-tool --module " + softhsm_token::module_path() +
                          " --token-label " + t.label() + " --login --pin " + t.pin() + " --list-objects --type secrkey",
                      &out) == 0);
  return count_of(out, "label:      " + label + "\n");
}

}  // namespace

TEST_CASE("two brokers on one HSM rotate a key once per auto_rotate_period between them; a fresh broker carries on") {
  softhsm_token token("rot-a");
  broker_process a({shared_member(token)}, fleet_yaml), b({shared_member(token)}, fleet_yaml);
  a.start();
  b.start();
  auto ca = a.unix_client(), cb = b.unix_client();

  auto refused = call(ca, "POST", "/v1/transit/keys/too-fast", {{"auto_rotate_period", "1s"}});
  CHECK(refused.status == 400);
  CHECK(refused.error().find("at least 2 seconds") != std::string::npos);
  CHECK(call(ca, "POST", "/v1/transit/keys/too-fast", {{"auto_rotate_period", "2500ms"}}).status == 400);  // whole seconds

  auto made = call(ca, "POST", "/v1/transit/keys/rolling", {{"auto_rotate_period", "2s"}});
  REQUIRE_MESSAGE(made.status == 200, made.error());
  CHECK(made.data().at("auto_rotate_period") == 2);
  CHECK(key_info(cb, "rolling").at("auto_rotate_period") == 2);  // the other broker reads it from the HSM

  bool rotated = eventually([&] { return latest(ca, "rolling") >= 5; }, 15s);
  INFO("broker a:\n" << a.log_tail(3000) << "\nbroker b:\n" << b.log_tail(3000));
  REQUIRE_MESSAGE(rotated, "4 periods of 2 s passed without 4 rotations");
  CHECK(call(ca, "POST", "/v1/transit/keys/rolling/config", {{"auto_rotate_period", 0}}).status == 200);
  auto versions = latest(ca, "rolling");
  auto times = creation_times(ca, "rolling");
  REQUIRE(times.size() == versions);
  for (std::size_t i = 1; i < times.size(); ++i) {
    INFO("version " << i + 1 << " made " << times[i] - times[i - 1] << " s after version " << i);
    CHECK(times[i] - times[i - 1] >= 2);  // never two rotations in one period
    CHECK(times[i] - times[i - 1] <= 4);  // and one in each (check_interval 100 ms; second-granular times)
  }
  // Exactly one broker made each version: one rotation logged fleet-wide, one HSM object, per version.
  std::this_thread::sleep_for(300ms);  // let a rotation in flight when the period was switched off finish (bounded: none may start)
  versions = latest(ca, "rolling");
  CHECK(count_of(a.log_tail(1 << 20), "key \"rolling\" rotated to version") +
            count_of(b.log_tail(1 << 20), "key \"rolling\" rotated to version") ==
        versions - 1);
  for (std::uint32_t v = 1; v <= versions; ++v) {
    INFO("version " << v);
    CHECK(objects_labelled(token, "hsmb/rolling/v" + std::to_string(v)) == 1);
  }
  auto ct = call(cb, "POST", "/v1/transit/encrypt/rolling", {{"plaintext", b64("after rotation")}});
  REQUIRE(ct.status == 200);
  CHECK(std::string(ct.data().at("ciphertext").as_string()).starts_with("vault:v" + std::to_string(versions) + ":"));

  // The period lives in the key's record on the HSM: a broker started afresh keeps rotating.
  CHECK(call(ca, "POST", "/v1/transit/keys/rolling/config", {{"auto_rotate_period", 2}}).status == 200);
  a.stop();
  b.stop();
  broker_process fresh({shared_member(token)}, fleet_yaml);
  fresh.start();
  auto cf = fresh.unix_client();
  CHECK(key_info(cf, "rolling").at("auto_rotate_period") == 2);
  INFO("fresh broker:\n" << fresh.log_tail(3000));
  CHECK_MESSAGE(eventually([&] { return latest(cf, "rolling") >= versions + 1; }, 8s),
                "the fresh broker did not rotate the key whose period had passed");
  auto after = creation_times(cf, "rolling");
  for (std::size_t i = 1; i < after.size(); ++i) CHECK(after[i] - after[i - 1] >= 2);
}
