#include "protocol/core/semver.h"

#include <fmt/format.h>

#include <algorithm>

#include "protocol/core/encoding.h"

namespace dispatch::core {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_identifier_char(char c) {
  return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-';
}
bool all_digits(std::string_view s) { return std::all_of(s.begin(), s.end(), is_digit); }

std::string_view trim(std::string_view s) {
  constexpr std::string_view k_space = " \t\r\n\v\f";
  const auto first = s.find_first_not_of(k_space);
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(k_space);
  return s.substr(first, last - first + 1);
}

std::string quoted(std::string_view text) { return fmt::format("'{}'", escape_for_message(text)); }

Error invalid(std::string_view text, std::string_view why) {
  return make_error(ErrorCode::bad_request, fmt::format("invalid version {}: {}", quoted(text), why));
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

Result<std::uint64_t> parse_number(std::string_view text, std::string_view part, std::string_view name) {
  if (part.empty() || !all_digits(part)) {
    return invalid(text, fmt::format("{} must be a non-negative integer", name));
  }
  if (part.size() > 1 && part[0] == '0') return invalid(text, fmt::format("{} has a leading zero", name));
  std::uint64_t value = 0;
  for (char c : part) {
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (k_max_version_number - digit) / 10) {
      return invalid(text, fmt::format("{} exceeds {}", name, k_max_version_number));
    }
    value = value * 10 + digit;
  }
  return value;
}

Result<std::vector<std::string>> parse_identifiers(std::string_view text, std::string_view list,
                                                   std::string_view name, bool numeric_rule) {
  std::vector<std::string> out;
  for (auto id : split(list, '.')) {
    if (id.empty()) return invalid(text, fmt::format("empty {} identifier", name));
    if (!std::all_of(id.begin(), id.end(), is_identifier_char)) {
      return invalid(text,
                     fmt::format("{} identifier {} has a character outside [0-9A-Za-z-]", name, quoted(id)));
    }
    // Only pre-release identifiers take part in precedence, so only they may not have leading zeros.
    if (numeric_rule && id.size() > 1 && id[0] == '0' && all_digits(id)) {
      return invalid(text, fmt::format("numeric {} identifier '{}' has a leading zero", name, id));
    }
    out.emplace_back(id);
  }
  return out;
}

int compare_identifiers(std::string_view a, std::string_view b) {
  const bool a_num = all_digits(a);
  const bool b_num = all_digits(b);
  if (a_num && b_num) {
    // Digit strings of any length: strip leading zeros (only a hand-built Version has them), then the
    // longer one is greater and equal lengths compare lexically.
    a.remove_prefix(std::min(a.find_first_not_of('0'), a.size()));
    b.remove_prefix(std::min(b.find_first_not_of('0'), b.size()));
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    const int c = a.compare(b);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a_num != b_num) return a_num ? -1 : 1;
  const int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

int compare_numbers(std::uint64_t a, std::uint64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

}  // namespace

Result<Version> parse_semver(std::string_view input) {
  const std::string_view text = trim(input);
  if (text.empty()) return invalid(text, "empty");
  std::string_view rest = text;
  if (rest.front() == 'v') rest.remove_prefix(1);

  Version v;
  const auto plus = rest.find('+');
  if (plus != std::string_view::npos) {
    if (plus + 1 == rest.size()) return invalid(text, "empty build metadata after '+'");
    auto build = parse_identifiers(text, rest.substr(plus + 1), "build", false);
    if (!build) return build.error();
    v.build = std::move(build.value());
    rest = rest.substr(0, plus);
  }
  const auto dash = rest.find('-');
  if (dash != std::string_view::npos) {
    if (dash + 1 == rest.size()) return invalid(text, "empty pre-release after '-'");
    auto pre = parse_identifiers(text, rest.substr(dash + 1), "pre-release", true);
    if (!pre) return pre.error();
    v.prerelease = std::move(pre.value());
    rest = rest.substr(0, dash);
  }

  const auto parts = split(rest, '.');
  if (parts.size() != 3) return invalid(text, "expected MAJOR.MINOR.PATCH");
  auto major = parse_number(text, parts[0], "MAJOR");
  if (!major) return major.error();
  auto minor = parse_number(text, parts[1], "MINOR");
  if (!minor) return minor.error();
  auto patch = parse_number(text, parts[2], "PATCH");
  if (!patch) return patch.error();
  v.major = *major;
  v.minor = *minor;
  v.patch = *patch;
  return v;
}

std::string format(const Version& v) {
  std::string out = fmt::format("{}.{}.{}", v.major, v.minor, v.patch);
  if (!v.prerelease.empty()) out += fmt::format("-{}", fmt::join(v.prerelease, "."));
  if (!v.build.empty()) out += fmt::format("+{}", fmt::join(v.build, "."));
  return out;
}

int compare(const Version& a, const Version& b) {
  if (int c = compare_numbers(a.major, b.major)) return c;
  if (int c = compare_numbers(a.minor, b.minor)) return c;
  if (int c = compare_numbers(a.patch, b.patch)) return c;
  // A release outranks any of its pre-releases.
  if (a.prerelease.empty() != b.prerelease.empty()) return a.prerelease.empty() ? 1 : -1;
  const std::size_t n = std::min(a.prerelease.size(), b.prerelease.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (int c = compare_identifiers(a.prerelease[i], b.prerelease[i])) return c;
  }
  return compare_numbers(a.prerelease.size(), b.prerelease.size());
}

}  // namespace dispatch::core
