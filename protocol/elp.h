// eLP, the line protocol esthesis agents publish on the metadata and ping topics (PROTOCOL §1):
//   <category> <name>=<value>[,<name>=<value>…][ <timestamp>]
// one measurement group per line, lines separated by '\n' ("\r\n" accepted, blank lines skipped).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/result.h"

namespace dispatch::protocol {

struct ElpValue {
  enum class Kind { string, integer, floating, boolean };

  std::string category;
  std::string name;
  // The value's text: quotes removed for strings, the type suffix removed for numbers ("100" for
  // 100l), "true"/"false" for booleans.
  std::string value;
  Kind kind = Kind::string;

  bool operator==(const ElpValue&) const = default;
};

// Values, in the order they appear:
//   'text'   a string; may hold spaces, commas and '='; \' is a quote inside it.
//   numbers  -?digits[.digits][e±digits] with an optional esthesis type suffix: i l s b bi (integer) or
//            f d bd (floating); without a suffix, integer unless it has a '.' or an exponent.
//   true / false   a boolean.
//   anything else unquoted (up to ',' or ' ', no quote) is a string, e.g. ping=2026-11-26T14:22:44Z.
// Empty pairs (",," or a leading/trailing ',', which the esthesis agent emits when a probe fails) are
// skipped. The optional timestamp must look like RFC 3339 (YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)) and is
// otherwise ignored. bad_request "eLP line <n>: <reason>" for: a category not matching [A-Za-z0-9_.-]+,
// a line without values, a name not matching [A-Za-z0-9_.-]+, a missing '=', an empty unquoted value, an
// unterminated quote, a quote inside an unquoted value, a bad timestamp, or anything after the timestamp.
core::Result<std::vector<ElpValue>> parse_elp(std::string_view text);

}  // namespace dispatch::protocol
