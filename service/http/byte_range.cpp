#include "service/http/byte_range.h"

#include <charconv>

namespace dispatch::service::http {
namespace {

using Kind = RangeSelection::Kind;

constexpr RangeSelection k_unsatisfiable{Kind::unsatisfiable, 0, 0};

// Digits only (no sign, no spaces); nullopt for empty, non-digit or above INT64_MAX (the largest value
// cpp-httplib's own parser accepts, so both layers refuse the same headers).
std::optional<std::uint64_t> parse_number(std::string_view s) {
  if (s.empty()) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  if (v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
  return v;
}

}  // namespace

RangeSelection select_range(std::optional<std::string_view> range_header, std::uint64_t total) {
  if (!range_header) return {};
  constexpr std::string_view k_unit = "bytes=";
  std::string_view spec = *range_header;
  if (!spec.starts_with(k_unit)) return k_unsatisfiable;
  spec.remove_prefix(k_unit.size());
  // Several ranges: serve the whole body (after checking each is well-formed, as httplib does).
  if (spec.find(',') != std::string_view::npos) {
    while (true) {
      auto comma = spec.find(',');
      std::string_view one = spec.substr(0, comma);
      while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
      auto dash = one.find('-');
      if (dash == std::string_view::npos) return k_unsatisfiable;
      auto a = one.substr(0, dash), b = one.substr(dash + 1);
      if ((!a.empty() && !parse_number(a)) || (!b.empty() && !parse_number(b))) return k_unsatisfiable;
      if (!a.empty() && !b.empty() && *parse_number(a) > *parse_number(b)) return k_unsatisfiable;
      if (comma == std::string_view::npos) break;
      spec.remove_prefix(comma + 1);
    }
    return {};
  }
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return k_unsatisfiable;
  std::string_view first_s = spec.substr(0, dash), last_s = spec.substr(dash + 1);
  if (first_s.empty()) {  // suffix range: the last n bytes
    auto n = parse_number(last_s);
    if (!n || *n == 0 || total == 0) return k_unsatisfiable;
    std::uint64_t len = *n < total ? *n : total;
    return {Kind::partial, total - len, len};
  }
  auto first = parse_number(first_s);
  if (!first) return k_unsatisfiable;
  std::uint64_t last = total == 0 ? 0 : total - 1;
  if (!last_s.empty()) {
    auto l = parse_number(last_s);
    if (!l || *l < *first) return k_unsatisfiable;
    if (*l < last) last = *l;
  }
  if (*first >= total) return k_unsatisfiable;
  return {Kind::partial, *first, last - *first + 1};
}

}  // namespace dispatch::service::http
