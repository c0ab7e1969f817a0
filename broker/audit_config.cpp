#include "broker/audit_config.h"

#include "common/yaml_node.h"

namespace hsmb {

void load_audit_section(const node_at& root, audit_config& out) {
  auto a = root.child("audit");
  if (!a.present()) return;
  a.expect_map({"file", "fail_closed"});
  auto file = a.child("file");
  if (!file.present()) a.fail("required: file (the audit log's path)");
  out.file = file.nonempty_text();
  if (out.file.front() != '/') file.fail("must be an absolute path");
  if (auto f = a.child("fail_closed"); f.present()) out.fail_closed = f.boolean();
}

}  // namespace hsmb
