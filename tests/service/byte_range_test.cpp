#include "service/http/byte_range.h"

#include <catch2/catch.hpp>

using namespace dispatch::service::http;
using Kind = RangeSelection::Kind;

TEST_CASE("select_range: each rule of the Range header over a known length") {
  struct {
    const char* rule;
    std::optional<std::string_view> header;
    std::uint64_t total;
    Kind kind;
    std::uint64_t first, length;
  } cases[] = {
      {"no header: the whole body", std::nullopt, 1000, Kind::whole, 0, 0},
      {"closed range", "bytes=10-19", 1000, Kind::partial, 10, 10},
      {"one byte", "bytes=0-0", 1000, Kind::partial, 0, 1},
      {"last byte by position", "bytes=999-999", 1000, Kind::partial, 999, 1},
      {"end past the length is cut", "bytes=990-5000", 1000, Kind::partial, 990, 10},
      {"open range", "bytes=100-", 1000, Kind::partial, 100, 900},
      {"open range from 0", "bytes=0-", 1000, Kind::partial, 0, 1000},
      {"suffix", "bytes=-5", 1000, Kind::partial, 995, 5},
      {"suffix longer than the body is the whole body as 206", "bytes=-5000", 1000, Kind::partial, 0, 1000},
      {"first at the length", "bytes=1000-", 1000, Kind::unsatisfiable, 0, 0},
      {"first past the length", "bytes=5000-5010", 1000, Kind::unsatisfiable, 0, 0},
      {"empty suffix", "bytes=-0", 1000, Kind::unsatisfiable, 0, 0},
      {"any range of an empty body", "bytes=0-", 0, Kind::unsatisfiable, 0, 0},
      {"suffix of an empty body", "bytes=-1", 0, Kind::unsatisfiable, 0, 0},
      {"several ranges: the whole body", "bytes=0-1,5-6", 1000, Kind::whole, 0, 0},
      {"several ranges with a space: the whole body", "bytes=0-1, -5", 1000, Kind::whole, 0, 0},
      {"several ranges, one malformed", "bytes=0-1,x", 1000, Kind::unsatisfiable, 0, 0},
      {"several ranges, one reversed", "bytes=0-1,9-5", 1000, Kind::unsatisfiable, 0, 0},
      {"reversed", "bytes=19-10", 1000, Kind::unsatisfiable, 0, 0},
      {"another unit", "items=0-1", 1000, Kind::unsatisfiable, 0, 0},
      {"no unit", "0-1", 1000, Kind::unsatisfiable, 0, 0},
      {"no dash", "bytes=10", 1000, Kind::unsatisfiable, 0, 0},
      {"only a dash", "bytes=-", 1000, Kind::unsatisfiable, 0, 0},
      {"letters", "bytes=a-b", 1000, Kind::unsatisfiable, 0, 0},
      {"sign", "bytes=+1-2", 1000, Kind::unsatisfiable, 0, 0},
      {"space inside", "bytes= 1-2", 1000, Kind::unsatisfiable, 0, 0},
      {"number over 2^63", "bytes=9223372036854775808-", 1000, Kind::unsatisfiable, 0, 0},
      {"number over 2^64", "bytes=0-99999999999999999999", 1000, Kind::unsatisfiable, 0, 0},
      {"empty header", "", 1000, Kind::unsatisfiable, 0, 0},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    RangeSelection s = select_range(c.header, c.total);
    CHECK(s.kind == c.kind);
    if (c.kind == Kind::partial) {
      CHECK(s.first == c.first);
      CHECK(s.length == c.length);
    }
  }
}
