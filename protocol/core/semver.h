// Semantic versions (SemVer 2.0.0, https://semver.org): parsing, formatting and precedence.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/result.h"

namespace dispatch::core {

// The largest accepted MAJOR, MINOR or PATCH (2^63 - 1), so each fits an SQLite INTEGER.
inline constexpr std::uint64_t k_max_version_number = 9'223'372'036'854'775'807ULL;

struct Version {
  std::uint64_t major = 0;
  std::uint64_t minor = 0;
  std::uint64_t patch = 0;
  std::vector<std::string> prerelease;  // dot-separated identifiers after '-', in order
  std::vector<std::string> build;       // dot-separated identifiers after '+', in order

  // Structural identity, build metadata included. For ordering use compare() / same_precedence().
  bool operator==(const Version&) const = default;
};

// Parses a SemVer 2.0.0 string. Surrounding whitespace is trimmed and one leading 'v' is accepted
// ("v1.2.3"). Refused with ErrorCode::bad_request and a message naming the rule broken: not exactly
// MAJOR.MINOR.PATCH, leading zeros in a numeric part or numeric pre-release identifier, an empty
// identifier, a character outside [0-9A-Za-z-], a number above k_max_version_number.
Result<Version> parse_semver(std::string_view text);

// "MAJOR.MINOR.PATCH[-pre][+build]"; parse_semver(format(v)) == v for every parsed v.
std::string format(const Version& v);

// SemVer precedence: <0, 0, >0. Build metadata is ignored; a pre-release sorts before its release;
// numeric identifiers compare numerically and sort before alphanumeric ones, which compare in ASCII
// order; with an equal prefix, the longer identifier list is greater.
int compare(const Version& a, const Version& b);

// compare(a, b) == 0: equal precedence even when build metadata differs.
inline bool same_precedence(const Version& a, const Version& b) { return compare(a, b) == 0; }
inline bool operator<(const Version& a, const Version& b) { return compare(a, b) < 0; }
inline bool operator>(const Version& a, const Version& b) { return compare(a, b) > 0; }
inline bool operator<=(const Version& a, const Version& b) { return compare(a, b) <= 0; }
inline bool operator>=(const Version& a, const Version& b) { return compare(a, b) >= 0; }

inline bool is_prerelease(const Version& v) { return !v.prerelease.empty(); }

}  // namespace dispatch::core
