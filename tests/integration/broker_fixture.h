// Shared pieces of the broker integration tests: a broker on one fresh SoftHSM2 token, and JSON
// calls that return status and parsed body.
#pragma once

#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "tests/lib/broker_process.h"
#include "tests/lib/softhsm_token.h"

namespace hsmb::test {

struct json_reply {
  unsigned status = 0;
  boost::json::value body;
  const boost::json::value& data() const { return body.at("data"); }
  std::string error() const {
    auto* o = body.if_object();
    if (!o || !o->contains("errors")) return "";
    return std::string(o->at("errors").at(0).as_string());
  }
};

inline json_reply call(client::broker_client& c, std::string_view method, std::string_view path,
                       const boost::json::object& body = {}) {
  auto r = c.request(method, path, body.empty() ? std::string() : boost::json::serialize(body));
  json_reply out{r.status, nullptr};
  if (!r.body.empty()) {
    boost::system::error_code ec;
    out.body = boost::json::parse(r.body, ec);
  }
  return out;
}

std::string b64(std::string_view s);

// Waits until `condition` holds, up to `timeout`, checking every 10 ms; returns the last check.
template <class F>
bool eventually(F condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}
std::string unb64(std::string_view s);

class network_hsm;
// Makes `key` of `type` on `hsm` through a one-member broker of its own (a token that later
// clones copy: the key is then on every member cloned from it).
void provision(network_hsm& hsm, const std::string& key, const std::string& type);
// The state /v1/broker/members gives member `name` ("serving", "down", ...); "" when it has none.
std::string member_state(broker_process& b, const std::string& name);

// One token ("hsm-a") served by one broker, started on first use and shared by a test binary.
struct single_member_broker {
  softhsm_token token{"hsm-a"};
  std::unique_ptr<broker_process> broker;
  explicit single_member_broker(std::string extra_yaml = "");
  static single_member_broker& shared();
};

}  // namespace hsmb::test
