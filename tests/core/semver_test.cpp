#include "protocol/core/semver.h"

#include <catch2/catch.hpp>

using namespace dispatch::core;

namespace {
Version parsed(std::string_view text) {
  auto v = parse_semver(text);
  INFO(text);
  REQUIRE(v.ok());
  return *v;
}
}  // namespace

TEST_CASE("parse_semver accepts valid versions", "[core][semver]") {
  struct {
    const char* rule;
    const char* text;
    std::uint64_t major, minor, patch;
    std::vector<std::string> prerelease, build;
    const char* formatted;
  } cases[] = {
      {"plain release", "1.2.3", 1, 2, 3, {}, {}, "1.2.3"},
      {"zeros allowed alone", "0.0.0", 0, 0, 0, {}, {}, "0.0.0"},
      {"surrounding whitespace trimmed", " 1.0.0 ", 1, 0, 0, {}, {}, "1.0.0"},
      {"tabs and newlines trimmed", "\t1.0.0\n", 1, 0, 0, {}, {}, "1.0.0"},
      {"one leading v", "v1.2.3", 1, 2, 3, {}, {}, "1.2.3"},
      {"pre-release identifiers", "1.0.0-alpha.1", 1, 0, 0, {"alpha", "1"}, {}, "1.0.0-alpha.1"},
      {"hyphen inside pre-release", "1.0.0-x-y-z.--", 1, 0, 0, {"x-y-z", "--"}, {}, "1.0.0-x-y-z.--"},
      {"pre-release zero alone", "1.0.0-0.3.7", 1, 0, 0, {"0", "3", "7"}, {}, "1.0.0-0.3.7"},
      {"alphanumeric with leading zero", "1.0.0-0a", 1, 0, 0, {"0a"}, {}, "1.0.0-0a"},
      {"build metadata", "1.0.0+20130313144700", 1, 0, 0, {}, {"20130313144700"}, "1.0.0+20130313144700"},
      {"build may have leading zeros", "1.0.0+001", 1, 0, 0, {}, {"001"}, "1.0.0+001"},
      {"pre-release and build",
       "1.0.0-beta+exp.sha.5114f85",
       1,
       0,
       0,
       {"beta"},
       {"exp", "sha", "5114f85"},
       "1.0.0-beta+exp.sha.5114f85"},
      {"hyphen after plus belongs to build", "1.0.0+a-b", 1, 0, 0, {}, {"a-b"}, "1.0.0+a-b"},
      {"largest number",
       "9223372036854775807.0.0",
       9223372036854775807ULL,
       0,
       0,
       {},
       {},
       "9223372036854775807.0.0"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto v = parse_semver(c.text);
    REQUIRE(v.ok());
    CHECK(v->major == c.major);
    CHECK(v->minor == c.minor);
    CHECK(v->patch == c.patch);
    CHECK(v->prerelease == c.prerelease);
    CHECK(v->build == c.build);
    CHECK(format(*v) == c.formatted);
    auto again = parse_semver(format(*v));
    REQUIRE(again.ok());
    CHECK(*again == *v);
  }
}

TEST_CASE("parse_semver refuses invalid versions with bad_request", "[core][semver]") {
  struct {
    const char* rule;
    std::string text;
    std::string message;
  } cases[] = {
      {"two parts", "1.0", "invalid version '1.0': expected MAJOR.MINOR.PATCH"},
      {"one part", "1", "invalid version '1': expected MAJOR.MINOR.PATCH"},
      {"four parts", "1.0.0.0", "invalid version '1.0.0.0': expected MAJOR.MINOR.PATCH"},
      {"empty", "", "invalid version '': empty"},
      {"only whitespace", "   ", "invalid version '': empty"},
      {"leading zero in major", "01.0.0", "invalid version '01.0.0': MAJOR has a leading zero"},
      {"leading zero in minor", "1.01.0", "invalid version '1.01.0': MINOR has a leading zero"},
      {"leading zero in patch", "1.0.00", "invalid version '1.0.00': PATCH has a leading zero"},
      {"leading zero in numeric pre-release", "1.0.0-01",
       "invalid version '1.0.0-01': numeric pre-release identifier '01' has a leading zero"},
      {"empty pre-release", "1.0.0-", "invalid version '1.0.0-': empty pre-release after '-'"},
      {"empty build", "1.0.0+", "invalid version '1.0.0+': empty build metadata after '+'"},
      {"inner space", "1.0 .0", "invalid version '1.0 .0': MINOR must be a non-negative integer"},
      {"two leading v", "vv1.2.3", "invalid version 'vv1.2.3': MAJOR must be a non-negative integer"},
      {"capital V", "V1.2.3", "invalid version 'V1.2.3': MAJOR must be a non-negative integer"},
      {"empty pre-release identifier", "1.0.0-a..b",
       "invalid version '1.0.0-a..b': empty pre-release identifier"},
      {"empty build identifier", "1.0.0+a..b", "invalid version '1.0.0+a..b': empty build identifier"},
      {"number above 2^63-1", "9223372036854775808.0.0",
       "invalid version '9223372036854775808.0.0': MAJOR exceeds 9223372036854775807"},
      {"number above 2^64", "1.0.99999999999999999999999",
       "invalid version '1.0.99999999999999999999999': PATCH exceeds 9223372036854775807"},
      {"negative", "-1.0.0", "invalid version '-1.0.0': expected MAJOR.MINOR.PATCH"},
      {"non-ASCII identifier escaped", "1.0.0-\xc3\xa4",
       "invalid version '1.0.0-\\xc3\\xa4': pre-release identifier '\\xc3\\xa4' has a character outside "
       "[0-9A-Za-z-]"},
      {"underscore", "1.0.0-a_b",
       "invalid version '1.0.0-a_b': pre-release identifier 'a_b' has a character outside [0-9A-Za-z-]"},
      {"build without version", "+1.0.0", "invalid version '+1.0.0': expected MAJOR.MINOR.PATCH"},
      {"empty patch", "1.0.", "invalid version '1.0.': PATCH must be a non-negative integer"},
      {"v alone", "v", "invalid version 'v': expected MAJOR.MINOR.PATCH"},
      {"long input truncated", std::string(100, '1'),
       "invalid version '" + std::string(64, '1') + "...': expected MAJOR.MINOR.PATCH"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto v = parse_semver(c.text);
    REQUIRE_FALSE(v.ok());
    CHECK(v.error().code == ErrorCode::bad_request);
    CHECK(v.error().message == c.message);
  }
}

TEST_CASE("precedence follows the semver.org chain", "[core][semver]") {
  const char* chain[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                         "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
                         "1.0.0-rc.1",  "1.0.0",         "2.0.0",
                         "2.1.0",       "2.1.1"};
  const std::size_t n = std::size(chain);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      INFO(chain[i] << " vs " << chain[j]);
      const int expected = i < j ? -1 : (i > j ? 1 : 0);
      CHECK(compare(parsed(chain[i]), parsed(chain[j])) == expected);
      CHECK((parsed(chain[i]) < parsed(chain[j])) == (i < j));
    }
  }
}

TEST_CASE("precedence rules", "[core][semver]") {
  struct {
    const char* rule;
    const char* a;
    const char* b;
    int expected;
  } cases[] = {
      {"alphanumeric compares in ASCII order", "1.0.0-alpha9", "1.0.0-alpha10", 1},
      {"numeric compares numerically", "1.0.0-9", "1.0.0-10", -1},
      {"numeric below alphanumeric", "1.0.0-999", "1.0.0-a", -1},
      {"uppercase before lowercase in ASCII", "1.0.0-Z", "1.0.0-a", -1},
      {"longer list wins on equal prefix", "1.0.0-a.b", "1.0.0-a", 1},
      {"numbers longer than 64 bits", "1.0.0-123456789012345678901234567890",
       "1.0.0-123456789012345678901234567891", -1},
      {"long number beats short", "1.0.0-100000000000000000000", "1.0.0-99999999999999999999", 1},
      {"build ignored", "1.0.0+a", "1.0.0+b", 0},
      {"build ignored on pre-release", "1.0.0-rc.1+x", "1.0.0-rc.1", 0},
      {"minor before patch", "1.1.0", "1.0.9", 1},
      {"major before minor", "2.0.0", "1.99.99", 1},
      {"pre-release of a newer version beats older release", "2.0.0-alpha", "1.9.9", 1},
      {"v prefix ignored", "v1.2.3", "1.2.3", 0},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    const Version a = parsed(c.a);
    const Version b = parsed(c.b);
    CHECK(compare(a, b) == c.expected);
    CHECK(compare(b, a) == -c.expected);
    CHECK(same_precedence(a, b) == (c.expected == 0));
  }
}

TEST_CASE("build metadata: same precedence, different identity", "[core][semver]") {
  const Version a = parsed("1.0.0+a");
  const Version b = parsed("1.0.0+b");
  CHECK(same_precedence(a, b));
  CHECK_FALSE(a < b);
  CHECK_FALSE(b < a);
  CHECK_FALSE(a == b);
}

TEST_CASE("is_prerelease", "[core][semver]") {
  CHECK(is_prerelease(parsed("1.0.0-rc.1")));
  CHECK_FALSE(is_prerelease(parsed("1.0.0")));
  CHECK_FALSE(is_prerelease(parsed("1.0.0+build.1")));
}
