#include "api/transit/openapi.h"

#include <boost/json.hpp>

namespace hsmb::api {
namespace json = boost::json;

namespace {

// "/v1/transit/sign/:name/:hash_algorithm?" -> {"/transit/sign/{name}", "/transit/sign/{name}/{hash_algorithm}"}
struct openapi_path {
  std::string path;
  std::vector<std::string> params;
};

// path += "/{name}", appended piecewise (GCC 12's -O3 -Wrestrict false positive, bug 105329).
void append_param(std::string& path, std::string_view name) {
  path += "/{";
  path += name;
  path += '}';
}

std::vector<openapi_path> expand(std::string_view pattern) {
  std::vector<openapi_path> out{{"", {}}};
  for (auto seg : split_path(pattern)) {
    if (out.front().path.empty() && out.size() == 1 && seg == "v1") continue;  // servers: /v1
    bool optional = seg.starts_with(':') && seg.ends_with('?');
    if (optional) {
      auto name = std::string(seg.substr(1, seg.size() - 2));
      auto with = out.back();
      append_param(with.path, name);
      with.params.push_back(name);
      out.push_back(std::move(with));
      continue;
    }
    for (auto& p : out) {
      if (seg.starts_with(':')) {
        append_param(p.path, seg.substr(1));
        p.params.push_back(std::string(seg.substr(1)));
      } else {
        p.path += '/';
        p.path += seg;
      }
    }
  }
  return out;
}

json::object operation(const route_spec& r, bool listing) {
  json::object op{{"operationId", std::string(r.operation) + (listing ? "-list" : "")},
                  {"x-vault-capability", std::string(to_string(r.needs))},
                  {"responses", json::object{{"200", json::object{{"description", "OK"}}}}}};
  if (r.admin) op["x-hsmb-admin"] = true;
  if (r.unauthenticated) op["x-vault-unauthenticated"] = true;
  if (listing)
    op["parameters"] = json::array{json::object{{"name", "list"}, {"in", "query"}, {"required", true},
                                                {"schema", json::object{{"type", "string"}, {"enum", json::array{"true"}}}}}};
  if (r.json_body && (r.methods & methods::write))
    op["requestBody"] = json::object{{"content", json::object{{"application/json", json::object{{"schema", json::object{{"type", "object"}}}}}}}};
  return op;
}

void pretty(std::string& out, const json::value& v, int depth) {
  auto indent = [&](int d) { out += '\n' + std::string(2 * d, ' '); };
  if (v.is_object() && !v.as_object().empty()) {
    out += '{';
    bool first = true;
    for (auto& [k, e] : v.as_object()) {
      if (!first) out += ',';
      first = false;
      indent(depth + 1);
      out += json::serialize(json::string(k)) + ": ";
      pretty(out, e, depth + 1);
    }
    indent(depth);
    out += '}';
  } else if (v.is_array() && !v.as_array().empty()) {
    out += '[';
    bool first = true;
    for (auto& e : v.as_array()) {
      if (!first) out += ',';
      first = false;
      indent(depth + 1);
      pretty(out, e, depth + 1);
    }
    indent(depth);
    out += ']';
  } else {
    out += json::serialize(v);
  }
}

}  // namespace

std::string openapi_document(const route_table& table) {
  json::object paths;
  for (auto& r : table.routes()) {
    if (!r.pattern.starts_with("/v1/")) continue;  // /metrics is not under Vault's API
    for (auto& p : expand(r.pattern)) {
      auto& item = paths[p.path];
      if (!item.is_object()) {
        json::array params;
        for (auto& name : p.params)
          params.push_back(json::object{{"name", name}, {"in", "path"}, {"required", true}, {"schema", json::object{{"type", "string"}}}});
        item = json::object{};
        if (!params.empty()) item.as_object()["parameters"] = std::move(params);
      }
      auto& o = item.as_object();
      if (r.methods & methods::get) o["get"] = operation(r, false);
      if (r.methods & methods::list) o["get"] = operation(r, true);  // LIST is GET ?list=true in OpenAPI
      if (r.methods & methods::post) o["post"] = operation(r, false);
      if (r.methods & methods::put) o["put"] = operation(r, false);
      if (r.methods & methods::del) o["delete"] = operation(r, false);
    }
  }
  json::object doc{{"openapi", "3.0.2"},
                   {"info", json::object{{"title", "hsm-broker (Vault Transit API)"}, {"version", "0.1.0"},
                                         {"description", "Generated from the broker's route table; x-vault-capability is what a policy must grant."}}},
                   {"servers", json::array{json::object{{"url", "/v1"}}}},
                   {"paths", std::move(paths)}};
  std::string out;
  pretty(out, doc, 0);
  return out + "\n";
}

}  // namespace hsmb::api
