// Fuzzes protocol::parse_elp (metadata and ping payloads of devices). Invariant: every value has a
// category and a name of the promised alphabet.
#include "protocol/elp.h"
#include "tests/fuzz/fuzz_check.h"

namespace {
bool name_like(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  auto values = protocol::parse_elp(fuzz::as_text(data, size));
  if (!values) return 0;
  for (const auto& v : *values) {
    fuzz::check(name_like(v.category), "category matches [A-Za-z0-9_.-]+");
    fuzz::check(name_like(v.name), "name matches [A-Za-z0-9_.-]+");
  }
  return 0;
}
