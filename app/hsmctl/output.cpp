#include "app/hsmctl/output.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>

#include <boost/json/serialize.hpp>

namespace hsmb::hsmctl {
namespace json = boost::json;

const json::value* field(const json::value& v, std::string_view key) {
  const auto* object = v.if_object();
  return object ? object->if_contains(key) : nullptr;
}

std::string text(const json::value* v) {
  if (v == nullptr || v->is_null()) return "-";
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_double()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v->get_double());
    return buf;
  }
  return json::serialize(*v);
}

std::string milliseconds_text(const json::value* v) {
  if (v == nullptr || !v->is_number()) return "-";
  double ms = v->to_number<double>();
  if (ms <= 0) return "-";
  char buf[32];
  if (ms >= 1000) std::snprintf(buf, sizeof buf, "%.2fs", ms / 1000);
  else if (ms >= 10) std::snprintf(buf, sizeof buf, "%.1fms", ms);
  else std::snprintf(buf, sizeof buf, "%.2fms", ms);
  return buf;
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view s) {
  std::tm tm{};
  int fields = std::sscanf(std::string(s).c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                           &tm.tm_hour, &tm.tm_min, &tm.tm_sec);
  if (fields != 6) return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::time_t t = ::timegm(&tm);
  if (t == -1) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t);
}

std::string age(std::chrono::system_clock::time_point t, std::chrono::system_clock::time_point now) {
  auto s = std::max<long long>(0, std::chrono::duration_cast<std::chrono::seconds>(now - t).count());
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else if (s < 86400) std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s % 3600 / 60);
  else std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
  return buf;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i)
      line += row[i] + (i + 1 < row.size() ? std::string(width[i] - row[i].size() + 2, ' ') : "");
    std::cout << line << "\n";
  }
}

}  // namespace hsmb::hsmctl
