// RFC 3339 timestamps, the wire format of every time (PROTOCOL: "2026-11-26T14:22:44Z").
#pragma once

#include <string>
#include <string_view>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"

namespace dispatch::core {

// "YYYY-MM-DDTHH:MM:SSZ" in UTC, whole seconds (milliseconds are dropped, rounding toward the past).
// Meant for years 0000-9999.
std::string format_rfc3339(TimeMs t);

// Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)"; 't' and 'z' may be lowercase. The
// fraction has 1-9 digits and is kept to the millisecond (truncated). bad_request for anything else:
// a missing part, an out-of-range field (month 13, February 30, hour 24, second 60, offset 24:00),
// leap seconds, a space instead of 'T', surrounding whitespace.
Result<TimeMs> parse_rfc3339(std::string_view text);

}  // namespace dispatch::core
