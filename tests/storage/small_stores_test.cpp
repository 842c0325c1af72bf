// Rate windows, nonces and the meta table.
#include <catch2/catch.hpp>

#include "storage/meta.h"
#include "storage/nonces.h"
#include "storage/rate_windows.h"
#include "tests/storage/storage_fixture.h"

namespace dispatch::storage {
namespace {

using test::backends;
using test::TestDb;
using Times = std::vector<core::TimeMs>;

TEST_CASE("rate windows keep events per key, bounded and prunable", "[storage][rate_windows]") {
  TestDb t(GENERATE(backends()));
  RateWindowStore store(*t, 3);
  for (core::TimeMs when : {10, 20, 30}) REQUIRE(store.record_event("dev-a", when).ok());
  REQUIRE(store.record_event("dev-b", 15).ok());
  struct {
    const char* rule;
    std::string key;
    core::TimeMs since;
    Times expected;
  } cases[] = {
      {"events of one key, ascending", "dev-a", 0, {10, 20, 30}},
      {"since is inclusive", "dev-a", 20, {20, 30}},
      {"keys are separate", "dev-b", 0, {15}},
      {"an unknown key has none", "dev-z", 0, {}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(store.events(c.key, c.since).value() == c.expected);
  }
  REQUIRE(store.record_event("dev-a", 40).ok());
  CHECK(store.events("dev-a", 0).value() == Times{20, 30, 40});  // bounded to the newest 3
  auto pruned = store.prune(30);
  REQUIRE(pruned.ok());
  CHECK(*pruned == 2);  // dev-a@20 and dev-b@15
  CHECK(store.events("dev-a", 0).value() == Times{30, 40});
}

TEST_CASE("rate windows drop expired events per key and enforce the count bound only when asked",
          "[storage][rate_windows]") {
  TestDb t(GENERATE(backends()));
  RateWindowStore store(*t, 3);
  constexpr core::TimeMs keep_all = 0;
  for (core::TimeMs when : {10, 20, 30}) REQUIRE(store.record_event("dev-a", when, keep_all, false).ok());
  REQUIRE(store.record_event("dev-b", 15, keep_all, false).ok());
  CHECK(store.events("dev-a", 0).value() == Times{10, 20, 30});
  // Events older than expired_before go, of this key only.
  REQUIRE(store.record_event("dev-a", 40, 25, false).ok());
  CHECK(store.events("dev-a", 0).value() == Times{30, 40});
  CHECK(store.events("dev-b", 0).value() == Times{15});
  // Over the limit: only the newest max_per_key stay.
  REQUIRE(store.record_event("dev-a", 50, keep_all, false).ok());
  REQUIRE(store.record_event("dev-a", 60, keep_all, true).ok());
  CHECK(store.events("dev-a", 0).value() == Times{40, 50, 60});
  // Not over the limit: no walk, so nothing is trimmed (the caller vouches for the bound).
  for (core::TimeMs when : {1, 2, 3, 4, 5}) REQUIRE(store.record_event("dev-c", when, keep_all, false).ok());
  CHECK(store.prune(1000).value() == 3 + 1 + 5);
}

TEST_CASE("a nonce is accepted once until pruned", "[storage][nonces]") {
  TestDb t(GENERATE(backends()));
  NonceStore store(*t);
  struct {
    const char* rule;
    std::string nonce;
    bool expected_new;
  } cases[] = {
      {"a fresh nonce is new", "dev-a/n1", true},
      {"the same nonce again is a replay", "dev-a/n1", false},
      {"another nonce is new", "dev-a/n2", true},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(store.insert_if_new(c.nonce, 100).value() == c.expected_new);
  }
  CHECK(store.count().value() == 2);
  CHECK(store.prune(100).value() == 0);
  CHECK(store.prune(101).value() == 2);
  CHECK(store.insert_if_new("dev-a/n1", 200).value());
}

TEST_CASE("meta values are set and replaced", "[storage][meta]") {
  TestDb t(GENERATE(backends()));
  MetaStore store(*t);
  CHECK_FALSE(store.get("k").value().has_value());
  REQUIRE(store.set("k", "1").ok());
  REQUIRE(store.set("k", "2").ok());
  CHECK(store.get("k").value() == "2");
}

TEST_CASE("stores take part in an outer transaction", "[storage][database]") {
  TestDb t(GENERATE(backends()));
  Database& db = *t;
  NonceStore nonces(db);
  MetaStore meta(db);
  auto s = db.transaction([&]() -> core::Status {
    REQUIRE(nonces.insert_if_new("n1", 1).value());
    REQUIRE(meta.set("k", "v").ok());
    return core::make_error(core::ErrorCode::unavailable, "later step failed");
  });
  REQUIRE_FALSE(s.ok());
  CHECK(nonces.count().value() == 0);
  CHECK_FALSE(meta.get("k").value().has_value());
}

}  // namespace
}  // namespace dispatch::storage
