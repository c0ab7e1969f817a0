#include "tests/integration/broker_fixture.h"

#include <doctest/doctest.h>

#include "common/base64.h"
#include "tests/lib/network_hsm.h"

namespace hsmb::test {

std::string b64(std::string_view s) { return base64_encode(as_bytes(s)); }

std::string unb64(std::string_view s) {
  auto d = base64_decode(s);
  return d ? std::string(d->begin(), d->end()) : std::string("<bad base64>");
}

single_member_broker::single_member_broker(std::string extra_yaml) {
  member_spec m{"hsm-a", softhsm_token::module_path(), token.label(), token.pin(), {{"SOFTHSM2_CONF", token.conf_path()}}};
  broker = std::make_unique<broker_process>(std::vector<member_spec>{m}, extra_yaml);
  broker->start();
}

single_member_broker& single_member_broker::shared() {
  static single_member_broker instance;
  return instance;
}

void provision(network_hsm& hsm, const std::string& key, const std::string& type) {
  broker_process b({hsm.member(hsm.name())});
  b.start();
  auto c = b.unix_client();
  auto r = call(c, "POST", "/v1/transit/keys/" + key, {{"type", type}});
  REQUIRE_MESSAGE(r.status == 200, r.error());
}

std::string member_state(broker_process& b, const std::string& name) {
  auto c = b.unix_client();
  auto reply = call(c, "GET", "/v1/broker/members");  // named: a range-for keeps no temporary alive
  for (auto& m : reply.data().at("members").as_array())
    if (m.at("name").as_string() == name) return std::string(m.at("state").as_string());
  return "";
}

}  // namespace hsmb::test
