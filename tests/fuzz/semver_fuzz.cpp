// Fuzzes core::parse_semver (device-reported and package versions). Invariants: format() round-trips
// (the header's promise) and compare() is antisymmetric and consistent with a re-parse.
#include "protocol/core/semver.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  auto fields = fuzz::split_fields(fuzz::as_text(data, size), 2);
  auto a = core::parse_semver(fields[0]);
  if (!a) return 0;
  auto text = core::format(*a);
  auto again = core::parse_semver(text);
  fuzz::check(again.ok() && *again == *a, "parse_semver(format(v)) == v");
  fuzz::check(core::compare(*a, *a) == 0, "compare(v, v) == 0");
  auto b = core::parse_semver(fields[1]);
  if (!b) return 0;
  int ab = core::compare(*a, *b);
  int ba = core::compare(*b, *a);
  fuzz::check((ab < 0) == (ba > 0) && (ab == 0) == (ba == 0), "compare is antisymmetric");
  return 0;
}
