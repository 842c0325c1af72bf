#include "protocol/elp.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace dispatch::protocol {

namespace {

using core::ErrorCode;
using core::make_error;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '.' || c == '-';
}

bool is_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

// Length of the number at the start of s (0 if none), and whether it has a fraction or an exponent.
std::size_t scan_number(std::string_view s, bool& fractional) {
  std::size_t i = 0;
  fractional = false;
  if (i < s.size() && s[i] == '-') ++i;
  const std::size_t int_start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == int_start) return 0;
  if (i < s.size() && s[i] == '.') {
    std::size_t j = i + 1;
    while (j < s.size() && is_digit(s[j])) ++j;
    if (j == i + 1) return 0;
    i = j;
    fractional = true;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    std::size_t j = i + 1;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    const std::size_t exp_start = j;
    while (j < s.size() && is_digit(s[j])) ++j;
    if (j == exp_start) return 0;
    i = j;
    fractional = true;
  }
  return i;
}

// Classifies an unquoted value; numbers lose their esthesis type suffix.
ElpValue classify(std::string_view raw) {
  ElpValue v;
  if (raw == "true" || raw == "false") {
    v.kind = ElpValue::Kind::boolean;
    v.value = std::string(raw);
    return v;
  }
  bool fractional = false;
  const std::size_t n = scan_number(raw, fractional);
  if (n > 0) {
    const std::string_view suffix = raw.substr(n);
    constexpr std::array<std::string_view, 6> k_integer_suffixes{"", "i", "l", "s", "b", "bi"};
    constexpr std::array<std::string_view, 3> k_floating_suffixes{"f", "d", "bd"};
    for (auto s : k_integer_suffixes) {
      if (suffix == s) {
        v.kind = fractional ? ElpValue::Kind::floating : ElpValue::Kind::integer;
        // "1.5" (no suffix) is a float; "1.5i" falls through to a string below.
        if (!fractional || s.empty()) {
          v.value = std::string(raw.substr(0, n));
          return v;
        }
      }
    }
    for (auto s : k_floating_suffixes) {
      if (suffix == s) {
        v.kind = ElpValue::Kind::floating;
        v.value = std::string(raw.substr(0, n));
        return v;
      }
    }
  }
  v.kind = ElpValue::Kind::string;
  v.value = std::string(raw);
  return v;
}

bool two_digits(std::string_view s, std::size_t at) {
  return at + 2 <= s.size() && is_digit(s[at]) && is_digit(s[at + 1]);
}

// YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM): the shape only; the value is not used.
bool looks_like_rfc3339(std::string_view s) {
  if (s.size() < 20) return false;
  if (!(two_digits(s, 0) && two_digits(s, 2) && s[4] == '-' && two_digits(s, 5) && s[7] == '-' &&
        two_digits(s, 8) && (s[10] == 'T' || s[10] == 't') && two_digits(s, 11) && s[13] == ':' &&
        two_digits(s, 14) && s[16] == ':' && two_digits(s, 17))) {
    return false;
  }
  std::size_t i = 19;
  if (s[i] == '.') {
    const std::size_t start = ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == start) return false;
  }
  const std::string_view zone = s.substr(i);
  if (zone == "Z" || zone == "z") return true;
  return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && two_digits(zone, 1) && zone[3] == ':' &&
         two_digits(zone, 4);
}

core::Status parse_line(std::string_view line, std::size_t number, std::vector<ElpValue>& out) {
  const auto fail = [number](std::string_view reason) {
    return make_error(ErrorCode::bad_request, fmt::format("eLP line {}: {}", number, reason));
  };
  const auto space = line.find(' ');
  const std::string_view category = line.substr(0, space);
  if (!is_name(category)) return fail("category must match [A-Za-z0-9_.-]+");
  if (space == std::string_view::npos) return fail("no values");

  std::size_t i = space;
  while (i < line.size() && line[i] == ' ') ++i;
  const std::size_t values_before = out.size();
  while (i < line.size() && line[i] != ' ') {
    if (line[i] == ',') {
      ++i;
      continue;
    }
    const auto eq = line.find('=', i);
    const auto end_of_name = line.find_first_of(", ", i);
    if (eq == std::string_view::npos || (end_of_name != std::string_view::npos && end_of_name < eq)) {
      return fail("a value has no '='");
    }
    const std::string_view name = line.substr(i, eq - i);
    if (!is_name(name)) return fail("value name must match [A-Za-z0-9_.-]+");
    i = eq + 1;
    ElpValue value;
    if (i < line.size() && line[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        const char c = line[i];
        if (c == '\\' && i + 1 < line.size() && line[i + 1] == '\'') {
          value.value += '\'';
          i += 2;
        } else if (c == '\'') {
          ++i;
          closed = true;
          break;
        } else {
          value.value += c;
          ++i;
        }
      }
      if (!closed) return fail("unterminated quote");
      if (i < line.size() && line[i] != ',' && line[i] != ' ') return fail("text after a closing quote");
      value.kind = ElpValue::Kind::string;
    } else {
      const auto end = std::min(line.find_first_of(", ", i), line.size());
      const std::string_view raw = line.substr(i, end - i);
      if (raw.empty()) return fail("empty value");
      if (raw.find('\'') != std::string_view::npos) return fail("quote inside an unquoted value");
      value = classify(raw);
      i = end;
    }
    value.category = std::string(category);
    value.name = std::string(name);
    out.push_back(std::move(value));
  }
  if (out.size() == values_before) return fail("no values");

  while (i < line.size() && line[i] == ' ') ++i;
  if (i == line.size()) return {};
  const auto end = std::min(line.find(' ', i), line.size());
  if (!looks_like_rfc3339(line.substr(i, end - i))) return fail("timestamp must be RFC 3339");
  i = end;
  while (i < line.size() && line[i] == ' ') ++i;
  if (i != line.size()) return fail("text after the timestamp");
  return {};
}

}  // namespace

core::Result<std::vector<ElpValue>> parse_elp(std::string_view text) {
  std::vector<ElpValue> out;
  std::size_t number = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto newline = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, newline - start);
    start = newline + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(' ') == std::string_view::npos) continue;
    if (auto s = parse_line(line, number, out); !s) return s.error();
  }
  if (out.empty()) return make_error(ErrorCode::bad_request, "eLP payload has no values");
  return out;
}

}  // namespace dispatch::protocol
