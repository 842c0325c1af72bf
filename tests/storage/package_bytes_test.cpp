// Package bytes as rows (storage/package_bytes.h), on every backend.
#include "storage/package_bytes.h"

#include <catch2/catch.hpp>

#include "tests/storage/storage_fixture.h"

namespace dispatch::storage {
namespace {

using test::backends;
using test::TestDb;

// Every byte value, so that a NUL or a byte above 0x7f would show a text round trip that loses it.
std::string all_bytes(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 7 + static_cast<std::size_t>(seed)) & 0xff);
  return s;
}

TEST_CASE("package bytes keep every byte, read any range across chunks, and refuse a gap",
          "[storage][package_bytes]") {
  TestDb t(GENERATE(backends()));
  PackageBytesStore store(*t);
  const std::string a = all_bytes(1000, 1), b = all_bytes(700, 2), c = all_bytes(300, 3);
  REQUIRE(store.put("pkg1", "part", 0, a).ok());
  REQUIRE(store.put("pkg1", "part", 1000, b).ok());
  REQUIRE(store.put("pkg1", "part", 1700, c).ok());
  const std::string whole = a + b + c;

  struct {
    const char* rule;
    std::int64_t offset, length;
  } ranges[] = {
      {"the whole", 0, 2000},         {"inside one chunk", 10, 100},
      {"across two chunks", 990, 20}, {"across three chunks", 999, 702},
      {"the last byte", 1999, 1},     {"nothing", 500, 0},
  };
  for (const auto& r : ranges) {
    INFO(r.rule);
    auto got = store.read("pkg1", "part", r.offset, r.length);
    REQUIRE(got.ok());
    CHECK(*got == whole.substr(static_cast<std::size_t>(r.offset), static_cast<std::size_t>(r.length)));
  }
  auto past_end = store.read("pkg1", "part", 1990, 20);
  REQUIRE_FALSE(past_end.ok());
  CHECK(past_end.error().code == core::ErrorCode::unavailable);
  CHECK(past_end.error().message == "package bytes missing at 2000");

  // A chunk sent again replaces the one at its offset; a gap is refused, not filled.
  REQUIRE(store.put("pkg1", "part", 1000, b).ok());
  auto extents = store.extents("pkg1", "part");
  REQUIRE(extents.ok());
  CHECK(extents->size() == 3);
  REQUIRE(store.put("pkg2", "part", 0, a).ok());
  REQUIRE(store.put("pkg2", "part", 1500, c).ok());
  auto gap = store.read("pkg2", "part", 900, 700);
  REQUIRE_FALSE(gap.ok());
  CHECK(gap.error().message == "package bytes missing at 1000");
}

TEST_CASE("package bytes are published by renaming their kind, listed and removed",
          "[storage][package_bytes]") {
  TestDb t(GENERATE(backends()));
  PackageBytesStore store(*t);
  REQUIRE(store.put("pkg1", "part", 0, "hello ").ok());
  REQUIRE(store.put("pkg1", "part", 6, "world").ok());
  REQUIRE(store.put("pkg2", "part", 0, "x").ok());
  auto moved = store.rename("pkg1", "part", "bin");
  REQUIRE(moved.ok());
  CHECK(*moved == 2);
  CHECK(store.read("pkg1", "bin", 0, 11).value() == "hello world");
  CHECK_FALSE(store.read("pkg1", "part", 0, 1).ok());
  auto listed = store.list();
  REQUIRE(listed.ok());
  CHECK(*listed == std::vector<std::pair<std::string, std::string>>{{"pkg1", "bin"}, {"pkg2", "part"}});
  CHECK(store.remove("pkg1", "bin").value() == 2);
  CHECK(store.remove("pkg1", "bin").value() == 0);
  CHECK(store.list().value().size() == 1);
}

}  // namespace
}  // namespace dispatch::storage
