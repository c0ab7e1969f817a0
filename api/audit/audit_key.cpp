#include "api/audit/audit_key.h"

namespace hsmb::api::audit {

std::string audit_key::hash(std::string_view value) const {
  std::string out;
  append_hash(out, value);
  return out;
}

void audit_key::append_hash(std::string& out, std::string_view value) const {
  if (!mac_) {
    out += unavailable_hash;
    return;
  }
  out += "hmac-sha256:";
  mac_->append_hex(out, value);
}

}  // namespace hsmb::api::audit
