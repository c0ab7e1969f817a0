#include "tests/integration/broker_fixture.h"

#include "common/base64.h"

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

}  // namespace hsmb::test
