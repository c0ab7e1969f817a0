// spdlog's default logger for hsm-broker and hsm-supervisor: stderr, as text or JSON lines
// (HSMB_LOG_FORMAT, common/log_line.h), at HSMB_LOG_LEVEL.
#pragma once

#include <string>

namespace hsmb::logline {

// `identifier`: the program ("hsm-broker"); `text_prefix` goes before each text message
// ("supervisor: "); a broker generation's lines also carry "[gen N]" (HSMB_GENERATION).
void setup_logging(const std::string& identifier, const std::string& text_prefix);

}  // namespace hsmb::logline
