// The reply line a device sends (PROTOCOL §1.2, esthesis-compatible): <id> <s|f> <output>.
#pragma once

#include <string>
#include <string_view>

#include "protocol/core/result.h"

namespace dispatch::protocol {

struct ReplyLine {
  std::string id;
  bool success = false;
  // Everything after the flag's following space, verbatim (may be empty, hold spaces and newlines).
  std::string output;

  bool operator==(const ReplyLine&) const = default;
};

// id = the text before the first space; then exactly one flag byte 's' or 'f'; then the end, or one
// space and the output. "<id> s" (no trailing space) is accepted with empty output. bad_request:
//   "reply line has no flag"                      (empty text, or no space after the id)
//   "invalid command id '<id>': must match ^[A-Za-z0-9_.:-]{1,128}$"
//   "reply flag '<flag>' must be 's' or 'f'"      (flag is not exactly one of those, e.g. "x", "sx", "")
// Output length limits are the caller's (it trims and marks `trimmed`).
core::Result<ReplyLine> parse_reply_line(std::string_view text);

// "<id> s <output>" / "<id> f <output>" (always with the space), for simulators and tests.
std::string encode_reply_line(std::string_view id, bool success, std::string_view output);

}  // namespace dispatch::protocol
