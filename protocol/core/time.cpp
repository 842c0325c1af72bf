#include "protocol/core/time.h"

#include <fmt/format.h>

#include "protocol/core/encoding.h"

namespace dispatch::core {

namespace {

constexpr std::int64_t k_ms_per_day = 86'400'000;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "chrono-compatible low-level date
// algorithms"); exact for every year, no time zone database or locale involved.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
  constexpr unsigned k_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : k_days[m - 1];
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

// Reads exactly n digits at pos; false if any is not a digit.
bool digits(std::string_view s, std::size_t pos, std::size_t n, unsigned& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return true;
}

bool expect(std::string_view s, std::size_t pos, char c) { return pos < s.size() && s[pos] == c; }

Error invalid(std::string_view text, std::string_view why) {
  return make_error(ErrorCode::bad_request,
                    fmt::format("invalid timestamp '{}': {}", escape_for_message(text), why));
}

}  // namespace

std::string format_rfc3339(TimeMs t) {
  const std::int64_t days = floor_div(t, k_ms_per_day);
  const std::int64_t ms_of_day = t - days * k_ms_per_day;
  const Civil c = civil_from_days(days);
  const std::int64_t secs = ms_of_day / 1000;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", c.year, c.month, c.day, secs / 3600,
                     secs / 60 % 60, secs % 60);
}

Result<TimeMs> parse_rfc3339(std::string_view text) {
  constexpr std::string_view k_shape = "expected YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)";
  unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(text, 0, 4, year) || !expect(text, 4, '-') || !digits(text, 5, 2, month) ||
      !expect(text, 7, '-') || !digits(text, 8, 2, day) ||
      !(expect(text, 10, 'T') || expect(text, 10, 't')) || !digits(text, 11, 2, hour) ||
      !expect(text, 13, ':') || !digits(text, 14, 2, minute) || !expect(text, 16, ':') ||
      !digits(text, 17, 2, second)) {
    return invalid(text, k_shape);
  }
  if (month < 1 || month > 12) return invalid(text, "month out of range");
  if (day < 1 || day > days_in_month(year, month)) return invalid(text, "day out of range");
  if (hour > 23) return invalid(text, "hour out of range");
  if (minute > 59) return invalid(text, "minute out of range");
  if (second > 59) return invalid(text, "second out of range (leap seconds are not accepted)");

  std::size_t pos = 19;
  std::int64_t millis = 0;
  if (expect(text, pos, '.')) {
    ++pos;
    std::size_t n = 0;
    for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++n) {
      if (n < 3) millis = millis * 10 + (text[pos] - '0');
    }
    if (n == 0 || n > 9) return invalid(text, "fraction must have 1 to 9 digits");
    for (; n < 3; ++n) millis *= 10;
  }

  std::int64_t offset_minutes = 0;
  if (expect(text, pos, 'Z') || expect(text, pos, 'z')) {
    ++pos;
  } else if (expect(text, pos, '+') || expect(text, pos, '-')) {
    const int sign = text[pos] == '-' ? -1 : 1;
    unsigned oh = 0, om = 0;
    if (!digits(text, pos + 1, 2, oh) || !expect(text, pos + 3, ':') || !digits(text, pos + 4, 2, om)) {
      return invalid(text, "offset must be Z or +hh:mm / -hh:mm");
    }
    if (oh > 23 || om > 59) return invalid(text, "offset out of range");
    offset_minutes = sign * static_cast<std::int64_t>(oh * 60 + om);
    pos += 6;
  } else {
    return invalid(text, "missing offset (Z or +hh:mm / -hh:mm)");
  }
  if (pos != text.size()) return invalid(text, "trailing characters");

  const std::int64_t days = days_from_civil(year, month, day);
  const std::int64_t local_ms = days * k_ms_per_day + ((hour * 60 + minute) * 60 + second) * 1000LL + millis;
  // The offset says how far local time is ahead of UTC.
  return local_ms - offset_minutes * 60'000;
}

}  // namespace dispatch::core
