#include "protocol/core/package_selection.h"

#include <algorithm>

namespace dispatch::core {

bool tags_match(const std::vector<std::string>& package_tags, const std::vector<std::string>& device_tags) {
  if (package_tags.empty()) return true;
  for (const auto& t : package_tags) {
    if (std::find(device_tags.begin(), device_tags.end(), t) != device_tags.end()) return true;
  }
  return false;
}

bool offerable(const PackageCandidate& p, const std::vector<std::string>& device_tags) {
  return p.available && p.ready && tags_match(p.tags, device_tags);
}

Result<std::optional<std::size_t>> select_latest(const std::vector<PackageCandidate>& candidates,
                                                 const std::string& device_version,
                                                 const std::vector<std::string>& device_tags) {
  auto device = parse_semver(device_version);
  if (!device) return make_error(ErrorCode::bad_request, "field 'version': " + device.error().message);

  std::optional<std::size_t> best;
  std::optional<Version> best_version;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const PackageCandidate& p = candidates[i];
    if (!offerable(p, device_tags)) continue;
    auto v = parse_semver(p.version);
    if (!v || *v <= *device) continue;
    if (is_prerelease(*v) && !is_prerelease(*device) && !p.prerelease_ok) continue;
    if (p.prerequisite_version) {
      // A prerequisite that does not parse cannot be satisfied: such a package is never offered.
      auto pre = parse_semver(*p.prerequisite_version);
      if (!pre || *pre > *device) continue;
    }
    if (best) {
      const int c = compare(*v, *best_version);
      if (c < 0) continue;
      if (c == 0) {
        const PackageCandidate& b = candidates[*best];
        if (p.created_at < b.created_at || (p.created_at == b.created_at && p.id < b.id)) continue;
      }
    }
    best = i;
    best_version = std::move(*v);
  }
  return best;
}

}  // namespace dispatch::core
