// The audit: section of the broker's configuration, parsed apart so config.cpp calls it in a line.
#pragma once

#include "broker/config.h"

namespace hsmb {

class node_at;
void load_audit_section(const node_at& root, audit_config& out);  // throws config_error

}  // namespace hsmb
