#include "common/log_line.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "common/utf8.h"

namespace hsmb::logline {

format format_from_env() {
  const char* f = std::getenv("HSMB_LOG_FORMAT");
  return f && std::string_view(f) == "json" ? format::json : format::text;
}

std::optional<int> generation_from_env() {
  const char* g = std::getenv("HSMB_GENERATION");
  if (!g || !*g) return std::nullopt;
  char* end = nullptr;
  long n = std::strtol(g, &end, 10);
  if (*end != '\0' || n < 0 || n > 1'000'000'000) return std::nullopt;
  return static_cast<int>(n);
}

int priority(std::string_view level) {
  if (level == "critical") return 2;
  if (level == "error") return 3;
  if (level == "warning") return 4;
  if (level == "info") return 6;
  return 7;
}

namespace {

std::string format_time(std::chrono::system_clock::time_point t, bool utc) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm tm{};
  if (utc) gmtime_r(&secs, &tm);
  else localtime_r(&secs, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03d%s", static_cast<int>(ms < 0 ? ms + 1000 : ms), utc ? "Z" : "");
  return buf;
}

}  // namespace

std::string timestamp(std::chrono::system_clock::time_point t) { return format_time(t, false); }
std::string utc_timestamp(std::chrono::system_clock::time_point t) { return format_time(t, true); }

void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::size_t run = 0;  // the start of the characters that need no escape, appended in one go
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') continue;
    if (c >= 0x80) {
      if (auto n = utf8_sequence_length(s, i)) {  // well-formed UTF-8 passes through
        i += n - 1;
        continue;
      }
    }
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        // A byte that is not UTF-8 (a raw request target, a cgroup's name): U+FFFD, as Go's
        // encoding/json (Vault's) writes it; a strict JSON reader would reject the whole line.
        if (c >= 0x80) {
          out += "\\ufffd";
          break;
        }
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
    }
  }
  out.append(s.data() + run, s.size() - run);
}

std::string_view member_of(std::string_view message) {
  constexpr std::string_view prefix = "member ";
  if (!message.starts_with(prefix)) return {};
  auto rest = message.substr(prefix.size());
  auto colon = rest.find(": ");
  if (colon == std::string_view::npos || colon == 0 || rest.substr(0, colon).find(' ') != std::string_view::npos)
    return {};
  return rest.substr(0, colon);
}

std::string json_line(const record& r) {
  std::string out;
  out.reserve(160 + r.message.size());
  auto string_field = [&](std::string_view name, std::string_view value) {
    out += out.size() == 1 ? "\"" : ",\"";
    out += name;
    out += "\":\"";
    append_json_escaped(out, value);
    out += '"';
  };
  out += '{';
  string_field("time", utc_timestamp(r.time));
  string_field("level", r.level);
  string_field("PRIORITY", std::to_string(priority(r.level)));  // journald's fields are strings
  string_field("SYSLOG_IDENTIFIER", r.identifier);
  string_field("SYSLOG_PID", std::to_string(r.pid));
  if (r.generation) out += ",\"generation\":" + std::to_string(*r.generation);
  auto member = r.member.empty() ? member_of(r.message) : r.member;
  if (!member.empty()) string_field("member", member);
  string_field("MESSAGE", r.message);
  out += "}\n";
  return out;
}

}  // namespace hsmb::logline
