// Durations as the config file writes them: "250ms", "2s", "5m", "1h".
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hsmb {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
std::string format_duration(std::chrono::milliseconds d);
// Seconds since the Unix epoch: what records and API answers carry as times.
std::int64_t unix_seconds_now();

}  // namespace hsmb
