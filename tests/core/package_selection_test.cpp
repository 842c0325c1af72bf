// Package selection (PROTOCOL §2.3): the esthesis reference cases (esthesis-core.md §3.4) and ours.
#include "protocol/core/package_selection.h"

#include <catch2/catch.hpp>

using dispatch::core::ErrorCode;
using dispatch::core::PackageCandidate;
using dispatch::core::select_latest;

namespace {

PackageCandidate pkg(std::string id, std::string version, std::optional<std::string> prereq = std::nullopt,
                     std::vector<std::string> tags = {}) {
  PackageCandidate p;
  p.id = std::move(id);
  p.version = std::move(version);
  p.prerequisite_version = std::move(prereq);
  p.tags = std::move(tags);
  p.available = true;
  p.ready = true;
  p.created_at = 1000;
  return p;
}

PackageCandidate with(PackageCandidate p, void (*f)(PackageCandidate&)) {
  f(p);
  return p;
}

}  // namespace

TEST_CASE("select_latest picks the highest eligible package", "[selection]") {
  struct Case {
    const char* rule;
    std::vector<PackageCandidate> packages;
    std::string device_version;
    std::vector<std::string> device_tags;
    std::string expected;  // package id, "" for up_to_date
  } cases[] = {
      {"esthesis: highest of several newer",
       {pkg("a", "1.0.1"), pkg("b", "1.0.9"), pkg("c", "1.0.5")},
       "1.0.0",
       {},
       "b"},
      {"nothing newer is up_to_date, not an error", {pkg("a", "1.0.0"), pkg("b", "0.9.0")}, "1.0.0", {}, ""},
      {"no packages at all is up_to_date", {}, "1.0.0", {}, ""},
      {"esthesis bug: device exactly at the prerequisite gets the target",
       {pkg("a", "1.0.1"), pkg("b", "1.0.9"), pkg("c", "2.0.0", "1.0.9")},
       "1.0.9",
       {},
       "c"},
      {"device below a prerequisite gets the stepping stone",
       {pkg("a", "1.0.1"), pkg("b", "1.0.9"), pkg("c", "2.0.0", "1.0.9")},
       "1.0.0",
       {},
       "b"},
      {"multi-hop: first hop",
       {pkg("s1", "1.5.0"), pkg("s2", "2.0.0", "1.5.0"), pkg("s3", "3.0.0", "2.0.0")},
       "1.0.0",
       {},
       "s1"},
      {"multi-hop: second hop",
       {pkg("s1", "1.5.0"), pkg("s2", "2.0.0", "1.5.0"), pkg("s3", "3.0.0", "2.0.0")},
       "1.5.0",
       {},
       "s2"},
      {"multi-hop: third hop",
       {pkg("s1", "1.5.0"), pkg("s2", "2.0.0", "1.5.0"), pkg("s3", "3.0.0", "2.0.0")},
       "2.0.0",
       {},
       "s3"},
      {"multi-hop: at the top",
       {pkg("s1", "1.5.0"), pkg("s2", "2.0.0", "1.5.0"), pkg("s3", "3.0.0", "2.0.0")},
       "3.0.0",
       {},
       ""},
      {"prerequisite is compared by precedence, not string",
       {pkg("a", "2.0.0", "v1.0.9+build")},
       "1.0.9",
       {},
       "a"},
      {"unreachable target without stepping stone is up_to_date",
       {pkg("a", "3.0.0", "2.0.0")},
       "1.0.0",
       {},
       ""},
      {"unavailable package is never offered",
       {pkg("a", "1.1.0"), with(pkg("b", "1.2.0"), [](PackageCandidate& p) { p.available = false; })},
       "1.0.0",
       {},
       "a"},
      {"package not uploaded yet is never offered",
       {pkg("a", "1.1.0"), with(pkg("b", "1.2.0"), [](PackageCandidate& p) { p.ready = false; })},
       "1.0.0",
       {},
       "a"},
      {"untagged package matches every device", {pkg("a", "1.1.0")}, "1.0.0", {"lab"}, "a"},
      {"tagged package needs a shared tag",
       {pkg("a", "1.1.0", std::nullopt, {"prod"})},
       "1.0.0",
       {"lab"},
       ""},
      {"tagged package does not match an untagged device",
       {pkg("a", "1.1.0", std::nullopt, {"prod"})},
       "1.0.0",
       {},
       ""},
      {"one shared tag is enough",
       {pkg("a", "1.1.0", std::nullopt, {"prod", "eu"})},
       "1.0.0",
       {"eu", "x"},
       "a"},
      {"pre-release not offered to a release device",
       {pkg("a", "1.1.0"), pkg("b", "1.2.0-rc.1")},
       "1.0.0",
       {},
       "a"},
      {"pre-release offered when prerelease_ok",
       {pkg("a", "1.1.0"), with(pkg("b", "1.2.0-rc.1"), [](PackageCandidate& p) { p.prerelease_ok = true; })},
       "1.0.0",
       {},
       "b"},
      {"pre-release offered to a pre-release device",
       {pkg("a", "1.1.0"), pkg("b", "1.2.0-rc.1")},
       "1.2.0-beta",
       {},
       "b"},
      {"release beats its own pre-release",
       {pkg("a", "1.2.0-rc.1"), pkg("b", "1.2.0")},
       "1.2.0-beta",
       {},
       "b"},
      {"strict SemVer: alpha.10 > alpha.9 numerically",
       {pkg("a", "1.0.0-alpha.9"), pkg("b", "1.0.0-alpha.10")},
       "1.0.0-alpha.1",
       {},
       "b"},
      {"build-metadata tie: newest created wins",
       {with(pkg("old", "1.1.0+b1"), [](PackageCandidate& p) { p.created_at = 1; }),
        with(pkg("new", "1.1.0+b2"), [](PackageCandidate& p) { p.created_at = 2; })},
       "1.0.0",
       {},
       "new"},
      {"build-metadata tie: order of candidates does not matter",
       {with(pkg("new", "1.1.0+b2"), [](PackageCandidate& p) { p.created_at = 2; }),
        with(pkg("old", "1.1.0+b1"), [](PackageCandidate& p) { p.created_at = 1; })},
       "1.0.0",
       {},
       "new"},
      {"build metadata of the device is ignored", {pkg("a", "1.0.0+b9")}, "1.0.0+b1", {}, ""},
      {"leading v on the device version is accepted", {pkg("a", "1.1.0")}, "v1.0.0", {}, "a"},
      {"package with an unparsable version is skipped",
       {pkg("a", "1.1.0"), pkg("b", "2.0")},
       "1.0.0",
       {},
       "a"},
      {"package with an unparsable prerequisite is skipped",
       {pkg("a", "1.1.0"), pkg("b", "2.0.0", "junk")},
       "1.0.0",
       {},
       "a"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      auto r = select_latest(c.packages, c.device_version, c.device_tags);
      REQUIRE(r.ok());
      std::string got = r->has_value() ? c.packages[**r].id : "";
      CHECK(got == c.expected);
    }
  }
}

TEST_CASE("select_latest refuses an invalid device version", "[selection]") {
  struct Case {
    const char* rule;
    std::string device_version;
  } cases[] = {
      {"two parts", "1.0"},      {"one part", "1"}, {"leading zero", "01.0.0"},
      {"four parts", "1.0.0.0"}, {"empty", ""},     {"garbage", "latest"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      auto r = select_latest({pkg("a", "9.0.0")}, c.device_version, {});
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::bad_request);
      CHECK(r.error().message.rfind("field 'version': ", 0) == 0);
    }
  }
}

TEST_CASE("offerable is the rule for a query by package id", "[selection]") {
  struct Case {
    const char* rule;
    PackageCandidate p;
    std::vector<std::string> device_tags;
    bool expected;
  } cases[] = {
      {"available, ready, untagged", pkg("a", "0.1.0"), {}, true},
      {"older versions allowed by id (downgrade)", pkg("a", "0.0.1"), {"x"}, true},
      {"unavailable refused",
       with(pkg("a", "1.0.0"), [](PackageCandidate& p) { p.available = false; }),
       {},
       false},
      {"not ready refused", with(pkg("a", "1.0.0"), [](PackageCandidate& p) { p.ready = false; }), {}, false},
      {"tag mismatch refused", pkg("a", "1.0.0", std::nullopt, {"prod"}), {"lab"}, false},
      {"tag match accepted", pkg("a", "1.0.0", std::nullopt, {"prod"}), {"prod"}, true},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) { CHECK(dispatch::core::offerable(c.p, c.device_tags) == c.expected); }
  }
}
