// The chunk frame (PROTOCOL §2.4 answers and packages/upload requests): one JSON header line, '\n', then
// raw bytes. Error answers are a header line only.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "protocol/core/result.h"

namespace dispatch::protocol {

struct Frame {
  nlohmann::json header;  // always an object
  // Points into the payload given to parse_frame: valid only while that payload is.
  std::string_view body;
};

// Splits at the first '\n'. Errors:
//   too_large   "frame header exceeds <max_header> bytes"              (no '\n' within max_header bytes)
//   bad_request "frame has no header line"                             (no '\n', and not an error-only frame)
//   bad_request "frame header must be a JSON object"                   (header unparsable or not an object)
//   bad_request "frame field 'length' must be a non-negative integer"
//   bad_request "frame length <N> disagrees with <M> bytes of data"
// A payload with no '\n' that is a JSON object holding "error" is accepted as an error-only frame (empty
// body). "length" is optional; when present it must equal the body size.
core::Result<Frame> parse_frame(std::string_view payload, std::size_t max_header = 4096);

// header.dump() (invalid UTF-8 replaced), '\n', body. An error-only frame is encode_frame(header, {}).
std::string encode_frame(const nlohmann::json& header, std::string_view body);

}  // namespace dispatch::protocol
