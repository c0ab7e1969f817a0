#include "broker/keys/drift_report.h"

#include <map>
#include <set>

namespace hsmb {
namespace asio = boost::asio;
using asio::awaitable;

awaitable<std::vector<key_sync>> report_drift(key_context& ctx_, copy_checks& checks) {
  std::vector<key_sync> report;
  auto names = ctx_.catalog.names();
  for (auto& name : names) {
    auto* e = ctx_.catalog.find(name);
    if (!e) continue;  // deleted while the report ran
    key_sync k{name, e->meta.type, {}};
    auto latest = e->meta.latest_version;
    for (std::uint32_t v = e->meta.min_decryption_version; v <= latest; ++v) {
      version_sync vs{v, {}, {}};
      for (std::size_t i = 0; i < ctx_.pool.size(); ++i) {
        if (!ctx_.pool.at(i).supports(k.type)) continue;
        auto copy = co_await checks.inspect_copy(ctx_.pool.at(i), name, v, k.type);  // not inside push_back (GCC 12)
        vs.copies.push_back(std::move(copy));
      }
      std::set<std::string> prints;
      bool missing = false;
      auto recorded = ctx_.catalog.find(name) ? ctx_.catalog.find(name)->meta.fingerprints : std::map<std::uint32_t, std::string>{};
      auto expected = recorded.find(v);
      for (auto& c : vs.copies) {
        if (!c.fingerprint.empty()) prints.insert(c.fingerprint);
        if (expected != recorded.end() && !c.fingerprint.empty() && c.fingerprint != expected->second) {
          c.problem = "mismatch: not the recorded key " + expected->second + "; not used";
          prints.insert(expected->second);
        }
        missing |= c.problem == "missing";
      }
      vs.status = prints.size() > 1 ? "mismatch" : prints.empty() ? "unchecked" : missing ? "missing" : "ok";
      k.versions.push_back(std::move(vs));
    }
    report.push_back(std::move(k));
  }
  co_return report;
}

}  // namespace hsmb
