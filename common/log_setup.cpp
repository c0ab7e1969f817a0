#include "common/log_setup.h"

#include <unistd.h>

#include <cstdlib>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/log_line.h"

namespace hsmb::logline {
namespace {

// One JSON object per line (common/log_line.h) instead of spdlog's pattern.
class json_formatter final : public spdlog::formatter {
 public:
  json_formatter(std::string identifier, std::optional<int> generation)
      : identifier_(std::move(identifier)), generation_(generation), pid_(static_cast<int>(::getpid())) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto level = spdlog::level::to_string_view(msg.level);
    record r{msg.time, std::string_view(level.data(), level.size()), identifier_, pid_, generation_, {},
             std::string_view(msg.payload.data(), msg.payload.size())};
    auto line = json_line(r);
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>(identifier_, generation_);
  }

 private:
  std::string identifier_;
  std::optional<int> generation_;
  int pid_;
};

}  // namespace

void setup_logging(const std::string& identifier, const std::string& text_prefix) {
  auto logger = spdlog::stderr_color_mt(identifier);
  auto generation = generation_from_env();
  if (format_from_env() == format::json) {
    logger->set_formatter(std::make_unique<json_formatter>(identifier, generation));
  } else {
    std::string tag = generation ? "[gen " + std::to_string(*generation) + "] " : "";
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ " + tag + text_prefix + "%v");
  }
  spdlog::set_default_logger(logger);
  if (const char* level = std::getenv("HSMB_LOG_LEVEL")) spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace hsmb::logline
