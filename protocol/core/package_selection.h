// Package selection (PROTOCOL §2.3): which package a device at a given version is offered. Pure: the
// caller loads the candidates and the device's tags; nothing here touches storage or the clock.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "protocol/core/semver.h"

namespace dispatch::core {

struct PackageCandidate {
  std::string id;
  std::string version;                              // SemVer text; an unparsable one is never offered
  std::optional<std::string> prerequisite_version;  // lowest version it may be installed over
  std::vector<std::string> tags;                    // empty: matches every device
  bool available = false;
  bool ready = true;  // false while an internal package's binary is not uploaded and verified
  bool prerelease_ok = false;
  TimeMs created_at = 0;
};

// A package with no tags matches every device; otherwise it must share at least one tag with the
// device. Tag lists need not be sorted.
bool tags_match(const std::vector<std::string>& package_tags, const std::vector<std::string>& device_tags);

// Whether the package may be offered at all: available, ready and tag-matched (the rule for a query by
// package_id, where any version, older ones included, may be answered).
bool offerable(const PackageCandidate& p, const std::vector<std::string>& device_tags);

// The highest eligible package for a device at device_version (index into candidates), nullopt when
// none is eligible ("up_to_date"). Eligible: offerable, version > device version by precedence,
// pre-releases only when the device runs one or the package is prerelease_ok, prerequisite absent or
// <= device version. A device below a prerequisite is thus offered the highest stepping stone it can
// install, and reaches the target over successive queries. Ties in precedence (build metadata only):
// the newest created_at wins, then the greater id. Candidates whose version or prerequisite does not
// parse are skipped. bad_request (parse_semver's message, prefixed "field 'version': ") when
// device_version is not SemVer.
Result<std::optional<std::size_t>> select_latest(const std::vector<PackageCandidate>& candidates,
                                                 const std::string& device_version,
                                                 const std::vector<std::string>& device_tags);

}  // namespace dispatch::core
