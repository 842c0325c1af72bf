// The Range header (RFC 9110 §14) for one representation of known length: a pure function.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace dispatch::service::http {

struct RangeSelection {
  enum class Kind {
    whole,          // 200, the whole representation
    partial,        // 206 with Content-Range: bytes first-last/total
    unsatisfiable,  // 416 with Content-Range: bytes */total
  };
  Kind kind = Kind::whole;
  std::uint64_t first = 0;   // partial: the first byte
  std::uint64_t length = 0;  // partial: how many bytes (>= 1)
};

// Selects what to send for `range_header` (nullopt: no Range header) over `total` bytes:
// - no header                                   -> whole
// - `bytes=a-b` (a <= b), `bytes=a-`, a < total -> partial [a, min(b, total-1)]
// - `bytes=-n`, n >= 1, total >= 1               -> partial, the last min(n, total) bytes
// - a >= total, `bytes=-0`, any range of an empty representation -> unsatisfiable
// - several ranges (`bytes=0-1,5-6`)            -> whole: a server may ignore Range (RFC 9110 §14.2)
//   and agents resume with one range; we never build multipart/byteranges
// - malformed (another unit, b < a, no digits, a number over 2^63, spaces) -> unsatisfiable, as
//   cpp-httplib already answers 416 to these before routing; the two layers agree.
RangeSelection select_range(std::optional<std::string_view> range_header, std::uint64_t total);

}  // namespace dispatch::service::http
