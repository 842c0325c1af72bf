#include "protocol/core/time.h"

#include <catch2/catch.hpp>

using namespace dispatch::core;

TEST_CASE("format_rfc3339 writes whole UTC seconds", "[core][time]") {
  struct {
    const char* rule;
    TimeMs t;
    const char* text;
  } cases[] = {
      {"epoch", 0, "1970-01-01T00:00:00Z"},
      {"protocol example", 1'795'702'964'000, "2026-11-26T14:22:44Z"},
      {"milliseconds dropped", 1'795'702'964'999, "2026-11-26T14:22:44Z"},
      {"leap day", 951'782'400'000, "2000-02-29T00:00:00Z"},
      {"end of year", 1'704'067'199'000, "2023-12-31T23:59:59Z"},
      {"before the epoch rounds toward the past", -1, "1969-12-31T23:59:59Z"},
      {"last second of 9999", 253'402'300'799'000, "9999-12-31T23:59:59Z"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(format_rfc3339(c.t) == c.text);
  }
}

TEST_CASE("parse_rfc3339 accepts Z, offsets and fractions", "[core][time]") {
  struct {
    const char* rule;
    const char* text;
    TimeMs t;
  } cases[] = {
      {"protocol example", "2026-11-26T14:22:44Z", 1'795'702'964'000},
      {"lowercase t and z", "2026-11-26t14:22:44z", 1'795'702'964'000},
      {"positive offset", "2026-11-26T15:22:44+01:00", 1'795'702'964'000},
      {"negative offset", "2026-11-26T09:52:44-04:30", 1'795'702'964'000},
      {"zero offset", "2026-11-26T14:22:44+00:00", 1'795'702'964'000},
      {"offset crosses the day", "2026-11-27T00:22:44+10:00", 1'795'702'964'000},
      {"one fraction digit", "2026-11-26T14:22:44.5Z", 1'795'702'964'500},
      {"three fraction digits", "2026-11-26T14:22:44.123Z", 1'795'702'964'123},
      {"nine digits truncated", "2026-11-26T14:22:44.987654321Z", 1'795'702'964'987},
      {"fraction with offset", "2026-11-26T15:22:44.25+01:00", 1'795'702'964'250},
      {"epoch", "1970-01-01T00:00:00Z", 0},
      {"before the epoch", "1969-12-31T23:59:59Z", -1000},
      {"leap day 2000", "2000-02-29T00:00:00Z", 951'782'400'000},
      {"leap day 2024", "2024-02-29T12:00:00Z", 1'709'208'000'000},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto t = parse_rfc3339(c.text);
    REQUIRE(t.ok());
    CHECK(*t == c.t);
  }
}

TEST_CASE("parse_rfc3339 refuses malformed timestamps", "[core][time]") {
  struct {
    const char* rule;
    const char* text;
    const char* message;
  } cases[] = {
      {"empty", "", "invalid timestamp '': expected YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)"},
      {"date only", "2026-11-26",
       "invalid timestamp '2026-11-26': expected YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)"},
      {"space separator", "2026-11-26 14:22:44Z",
       "invalid timestamp '2026-11-26 14:22:44Z': expected YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)"},
      {"missing offset", "2026-11-26T14:22:44",
       "invalid timestamp '2026-11-26T14:22:44': missing offset (Z or +hh:mm / -hh:mm)"},
      {"month 13", "2026-13-01T00:00:00Z", "invalid timestamp '2026-13-01T00:00:00Z': month out of range"},
      {"month 0", "2026-00-01T00:00:00Z", "invalid timestamp '2026-00-01T00:00:00Z': month out of range"},
      {"February 30", "2026-02-30T00:00:00Z", "invalid timestamp '2026-02-30T00:00:00Z': day out of range"},
      {"February 29 in a common year", "2026-02-29T00:00:00Z",
       "invalid timestamp '2026-02-29T00:00:00Z': day out of range"},
      {"February 29 in 1900", "1900-02-29T00:00:00Z",
       "invalid timestamp '1900-02-29T00:00:00Z': day out of range"},
      {"day 0", "2026-01-00T00:00:00Z", "invalid timestamp '2026-01-00T00:00:00Z': day out of range"},
      {"hour 24", "2026-01-01T24:00:00Z", "invalid timestamp '2026-01-01T24:00:00Z': hour out of range"},
      {"minute 60", "2026-01-01T00:60:00Z", "invalid timestamp '2026-01-01T00:60:00Z': minute out of range"},
      {"leap second", "2016-12-31T23:59:60Z",
       "invalid timestamp '2016-12-31T23:59:60Z': second out of range (leap seconds are not accepted)"},
      {"empty fraction", "2026-01-01T00:00:00.Z",
       "invalid timestamp '2026-01-01T00:00:00.Z': fraction must have 1 to 9 digits"},
      {"ten fraction digits", "2026-01-01T00:00:00.1234567890Z",
       "invalid timestamp '2026-01-01T00:00:00.1234567890Z': fraction must have 1 to 9 digits"},
      {"offset without colon", "2026-01-01T00:00:00+0100",
       "invalid timestamp '2026-01-01T00:00:00+0100': offset must be Z or +hh:mm / -hh:mm"},
      {"offset hour 24", "2026-01-01T00:00:00+24:00",
       "invalid timestamp '2026-01-01T00:00:00+24:00': offset out of range"},
      {"trailing text", "2026-01-01T00:00:00Zjunk",
       "invalid timestamp '2026-01-01T00:00:00Zjunk': trailing characters"},
      {"surrounding whitespace", " 2026-01-01T00:00:00Z",
       "invalid timestamp ' 2026-01-01T00:00:00Z': expected YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)"},
      {"two-digit year", "26-01-01T00:00:00Z",
       "invalid timestamp '26-01-01T00:00:00Z': expected YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)"},
      {"non-ASCII escaped", "2026-01-01T00:00:00\xc3\xa4",
       "invalid timestamp '2026-01-01T00:00:00\\xc3\\xa4': missing offset (Z or +hh:mm / -hh:mm)"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto t = parse_rfc3339(c.text);
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().code == ErrorCode::bad_request);
    CHECK(t.error().message == c.message);
  }
}

TEST_CASE("format and parse round-trip over the years", "[core][time]") {
  for (TimeMs t = -2'208'988'800'000; t < 4'102'444'800'000; t += 86'400'000LL * 37 + 3'723'000) {
    const std::string text = format_rfc3339(t);
    auto back = parse_rfc3339(text);
    INFO(text);
    REQUIRE(back.ok());
    CHECK(*back == t);
  }
}
