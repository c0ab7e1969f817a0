// hsmctl: command-line client for hsm-broker's Transit-compatible API (README "hsmctl").
#include <iostream>

#include "app/hsmctl/audit.h"
#include "app/hsmctl/ctl.h"
#include "app/hsmctl/options.h"
#include "app/hsmctl/token.h"

using namespace hsmb::hsmctl;

int main(int argc, char** argv) {
  try {
    auto o = parse_options(argc, argv);
    if (o.args.empty()) {
      std::cerr << usage;
      return exit_error;
    }
    if (o.args[0] == "token") {  // offline: no broker
      o.accept({});
      return hsmb::ctl::token_command({o.args.begin() + 1, o.args.end()}, o.json);
    }
    if (o.args[0] == "audit" && o.args.size() > 1 && o.args[1] == "verify") {  // offline: no broker
      o.accept({});
      o.operands(2, 1, 1);
      return audit_verify(o.args[2], o.json);
    }
    return ctl(std::move(o)).run();
  } catch (const exit_status& e) {
    return e.code;
  } catch (const std::exception& e) {
    std::cerr << "hsmctl: " << e.what() << "\n";
    return exit_error;
  }
}
