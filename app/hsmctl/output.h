// What hsmctl prints: JSON fields as text, tables, latencies with units, ages of timestamps.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

namespace hsmb::hsmctl {

// The member `key` of an object, or nullptr.
const boost::json::value* field(const boost::json::value& v, std::string_view key);
// Human-readable text of a JSON value; "-" when absent or null.
std::string text(const boost::json::value* v);
// "0.42ms", "12.3ms", "1.20s"; "-" for no samples (0 or absent).
std::string milliseconds_text(const boost::json::value* v);
// "2026-01-31T12:00:00Z" (or with fractional seconds) as a time point.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view s);
// "45s", "12m", "3h05m", "2d04h": how long ago `t` was.
std::string age(std::chrono::system_clock::time_point t, std::chrono::system_clock::time_point now);
// Rows of equal-width columns, two spaces apart; the first row is the header.
void print_table(const std::vector<std::vector<std::string>>& rows);

}  // namespace hsmb::hsmctl
