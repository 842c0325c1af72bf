// InstanceStartStore: recording starts, the newest start of any instance (the cluster's restart epoch,
// seen through a second connection as another instance would), and the pruning bound, on SQLite (memory
// and file) and PostgreSQL.
#include "storage/instance_starts.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "storage/database.h"
#include "tests/storage/storage_fixture.h"

namespace dispatch::storage {
namespace {

using core::ErrorCode;
using test::TestDb;

constexpr core::TimeMs k_t0 = 1'790'000'000'000;

TEST_CASE("the newest start of any instance is the newest recorded, a restart replaces its own row",
          "[storage][instance_starts]") {
  TestDb t(GENERATE(test::backends()));
  InstanceStartStore starts(*t);
  auto none = starts.newest();
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());

  REQUIRE(starts.record("a", k_t0).ok());
  REQUIRE(starts.record("b", k_t0 + 5'000).ok());
  CHECK(starts.newest().value() == k_t0 + 5'000);
  // A restarts: its row moves forward, B's start stays.
  REQUIRE(starts.record("a", k_t0 + 9'000).ok());
  CHECK(starts.newest().value() == k_t0 + 9'000);
  CHECK(starts.get("a").value() == k_t0 + 9'000);
  CHECK(starts.get("b").value() == k_t0 + 5'000);
  CHECK_FALSE(starts.get("c").value().has_value());
}

TEST_CASE("another instance's start is seen through another connection", "[storage][instance_starts]") {
  TestDb t(GENERATE(test::shared_backends()));
  auto other = t.connect();
  InstanceStartStore mine(*t);
  InstanceStartStore theirs(*other);
  REQUIRE(mine.record("a", k_t0).ok());
  CHECK(theirs.newest().value() == k_t0);
  REQUIRE(theirs.record("b", k_t0 + 1).ok());
  CHECK(mine.newest().value() == k_t0 + 1);
}

TEST_CASE("starts older than the retention are pruned when a newer one is recorded",
          "[storage][instance_starts]") {
  TestDb t(GENERATE(test::backends()));
  InstanceStartStore starts(*t);
  REQUIRE(starts.record("old", k_t0).ok());
  REQUIRE(starts.record("kept", k_t0 + 1).ok());
  REQUIRE(starts.record("new", k_t0 + k_instance_start_retention_ms + 1).ok());
  CHECK_FALSE(starts.get("old").value().has_value());
  CHECK(starts.get("kept").value() == k_t0 + 1);
  CHECK(starts.newest().value() == k_t0 + k_instance_start_retention_ms + 1);
}

TEST_CASE("a start without an instance id is refused", "[storage][instance_starts]") {
  TestDb t(GENERATE(test::backends()));
  auto st = InstanceStartStore(*t).record("", k_t0);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ErrorCode::bad_request);
  CHECK(InstanceStartStore(*t).newest().value() == std::nullopt);
}

}  // namespace
}  // namespace dispatch::storage
