#include "app/hsmctl/audit.h"

#include <fstream>
#include <iostream>

#include "api/audit/chain.h"

namespace hsmb::hsmctl {

int audit_verify(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << "hsmctl: cannot read " << file << "\n";
    return 2;
  }
  auto r = api::audit::verify_chain(in);
  if (r.ok) {
    std::cout << "ok, " << r.lines << " lines\n";
    return 0;
  }
  std::cout << file << ":" << r.first_bad << ": " << r.problem << "\n";
  return 1;
}

}  // namespace hsmb::hsmctl
