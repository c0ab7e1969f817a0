// hsmctl audit verify FILE: recomputes the audit log's hash chain offline (api/audit/chain.h).
#pragma once

#include <string>

namespace hsmb::hsmctl {

// Prints "ok, N lines" (0) or the first broken line's number (1); 2 when the file cannot be read.
// `json`: {"ok": true, "lines": N} or {"ok": false, "line": N, "problem": "..."}.
int audit_verify(const std::string& file, bool json = false);

}  // namespace hsmb::hsmctl
