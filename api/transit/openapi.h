// The OpenAPI 3 document of the broker's routes, generated from the route table (so it cannot
// drift from what the broker serves): GET /v1/sys/internal/specs/openapi and docs/openapi.json.
#pragma once

#include <string>

#include "api/transit/route_table.h"

namespace hsmb::api {

// Paths relative to /v1, as Vault's document writes them; an optional segment gives two paths.
// Pretty-printed, one member per line, so the copy in docs/ diffs well.
std::string openapi_document(const route_table& table);

}  // namespace hsmb::api
