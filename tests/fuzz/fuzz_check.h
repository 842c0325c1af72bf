// Helpers shared by the libFuzzer targets: an invariant check that aborts (so libFuzzer records the
// input as a crash) and a splitter that turns one fuzz input into several fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace dispatch::fuzz {

// An invariant the parser promises in its header; a violation is reported like a crash.
inline void check(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
  std::abort();
}

// The input as text.
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits at each NUL byte into at most max_parts fields (the last one keeps any further NULs), so one
// input can feed a PEM and a signature, or a topic and a hardware id. Missing fields are empty.
inline std::vector<std::string_view> split_fields(std::string_view text, std::size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    auto nul = text.find('\0');
    if (nul == std::string_view::npos) break;
    parts.push_back(text.substr(0, nul));
    text.remove_prefix(nul + 1);
  }
  parts.push_back(text);
  parts.resize(max_parts);
  return parts;
}

}  // namespace dispatch::fuzz
