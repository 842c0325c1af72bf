// Fuzzes core::parse_rfc3339 (ts of provisioning queries, campaign windows). Invariant: a parsed time
// formats to whole seconds that parse back to the same second.
#include "protocol/core/time.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  auto t = core::parse_rfc3339(fuzz::as_text(data, size));
  if (!t) return 0;
  // format_rfc3339 is meant for years 0000-9999; offsets can move a parsed time just outside.
  constexpr core::TimeMs k_year_0 = -62167219200000;
  constexpr core::TimeMs k_year_10000 = 253402300800000;
  if (*t < k_year_0 || *t >= k_year_10000) return 0;
  auto text = core::format_rfc3339(*t);
  auto again = core::parse_rfc3339(text);
  auto floor_s = [](core::TimeMs ms) { return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000); };
  fuzz::check(again.ok() && *again == floor_s(*t) * 1000, "format_rfc3339 round-trips to the second");
  return 0;
}
