// Logging: spdlog to stdout, plain text or JSON lines. Callers never pass a token, a key or a signature.
#pragma once

#include <string>

namespace dispatch::service {

// format: "text" | "json"; level: trace debug info warn error.
void setup_logging(const std::string& format, const std::string& level);

}  // namespace dispatch::service
