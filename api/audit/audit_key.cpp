#include "api/audit/audit_key.h"

namespace hsmb::api::audit {

std::string audit_key::hash(std::string_view value) const {
  if (!mac_) return std::string(unavailable_hash);
  return "hmac-sha256:" + mac_->hex(value);
}

}  // namespace hsmb::api::audit
