// Local input files of the tools: campaign documents (JSON or TOML) and key files.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "protocol/core/result.h"

namespace dispatch::tools {

// The whole file. bad_request "cannot read <path>: <reason>" when it cannot be opened or read.
core::Result<std::string> read_text_file(const std::string& path);

// A campaign document (PROTOCOL §4) as a JSON object, chosen by extension: ".json", or ".toml" (converted:
// tables → objects, arrays → arrays, dates and times → RFC 3339 strings). bad_request for an unreadable
// file, "unsupported campaign file extension '<ext>' (use .json or .toml)", a parse error
// ("<path>: <parser message>"), or a document that is not an object. The content is the service's to check.
core::Result<nlohmann::json> load_campaign_document(const std::string& path);

// TOML text → JSON object (same conversion as above). bad_request with the parser's message.
core::Result<nlohmann::json> toml_to_json(const std::string& text);

}  // namespace dispatch::tools
