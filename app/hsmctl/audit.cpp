#include "app/hsmctl/audit.h"

#include <fstream>
#include <iostream>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "api/audit/chain.h"

namespace hsmb::hsmctl {

int audit_verify(const std::string& file, bool json) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << "hsmctl: cannot read " << file << "\n";
    return 2;
  }
  auto r = api::audit::verify_chain(in);
  if (json) {
    boost::json::object out{{"ok", r.ok}, {"lines", r.lines}};
    if (!r.ok) {
      out["line"] = r.first_bad;
      out["problem"] = r.problem;
    }
    std::cout << boost::json::serialize(out) << "\n";
    return r.ok ? 0 : 1;
  }
  if (r.ok) {
    std::cout << "ok, " << r.lines << " lines\n";
    return 0;
  }
  std::cout << file << ":" << r.first_bad << ": " << r.problem << "\n";
  return 1;
}

}  // namespace hsmb::hsmctl
