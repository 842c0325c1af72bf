// request_id idempotency (service/idempotency.h), and what the loser of a race between two instances
// answers: the winner's answer, not a refusal.
#include "service/idempotency.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "storage/database.h"
#include "tests/storage/storage_fixture.h"

using namespace dispatch;
using nlohmann::json;

namespace {

const json k_body{{"type", "reboot"}, {"hardware_ids", {"dev-1"}}, {"request_id", "r-1"}};
constexpr core::TimeMs k_now = 1'790'000'000'000;

// k_body with patch applied.
json with(const json& patch) {
  json body = k_body;
  body.merge_patch(patch);
  return body;
}

std::unique_ptr<storage::Database> memory_db() {
  auto db = storage::Database::open(":memory:");
  REQUIRE(db);
  return std::move(*db);
}

}  // namespace

TEST_CASE("the same request again gets the first answer, another body with the same request_id conflict",
          "[service][idempotency]") {
  auto db = memory_db();
  service::IdempotentRequests ids(*db);
  auto none = ids.replay("commands/send", std::string("r-1"), k_body);
  REQUIRE(none);
  CHECK_FALSE(none->has_value());
  REQUIRE(ids.record("commands/send", std::string("r-1"), k_body, {{"command_id", "C1"}}, k_now));
  auto again = ids.replay("commands/send", std::string("r-1"), with({{"correlation_id", "x"}}));
  REQUIRE(again);
  REQUIRE(again->has_value());
  CHECK((**again)["command_id"] == "C1");
  auto other = ids.replay("commands/send", std::string("r-1"), with({{"type", "shutdown"}}));
  REQUIRE_FALSE(other);
  CHECK(other.error().code == core::ErrorCode::conflict);
  // Scopes are apart.
  auto campaigns = ids.replay("campaigns/create", std::string("r-1"), k_body);
  REQUIRE(campaigns);
  CHECK_FALSE(campaigns->has_value());
}

TEST_CASE("a create that lost the race for its request_id answers with the winner's answer",
          "[service][idempotency][cluster]") {
  // The state a race leaves: instance A committed its create and answer after instance B's replay found
  // nothing; B's own record then fails on the unique key.
  auto db = memory_db();
  service::IdempotentRequests ids(*db);
  REQUIRE(ids.record("commands/send", std::string("r-1"), k_body, {{"command_id", "A"}}, k_now));
  auto lost = ids.record("commands/send", std::string("r-1"), k_body, {{"command_id", "B"}}, k_now);
  REQUIRE_FALSE(lost);
  REQUIRE(lost.error().code == core::ErrorCode::conflict);
  auto answer = ids.after_failed_create("commands/send", std::string("r-1"), k_body, lost.error());
  REQUIRE(answer);
  CHECK((*answer)["command_id"] == "A");
  // A different body under the same request_id stays a conflict, with replay's message.
  auto differs = ids.after_failed_create("commands/send", std::string("r-1"), with({{"type", "shutdown"}}),
                                         lost.error());
  REQUIRE_FALSE(differs);
  CHECK(differs.error().code == core::ErrorCode::conflict);
  CHECK(differs.error().message.find("already used with a different request") != std::string::npos);
  // Not a race: the failure is the answer.
  const core::Error down = core::make_error(core::ErrorCode::unavailable, "database gone");
  auto other_failure = ids.after_failed_create("commands/send", std::string("r-1"), k_body, down);
  REQUIRE_FALSE(other_failure);
  CHECK(other_failure.error().code == core::ErrorCode::unavailable);
  auto no_id = ids.after_failed_create("commands/send", std::nullopt, k_body, lost.error());
  REQUIRE_FALSE(no_id);
  CHECK(no_id.error().code == core::ErrorCode::conflict);
  auto unrelated = ids.after_failed_create("commands/send", std::string("r-2"), k_body, lost.error());
  REQUIRE_FALSE(unrelated);  // a conflict of another kind: no record of r-2
  CHECK(unrelated.error().message == lost.error().message);
}

TEST_CASE("PostgreSQL: two instances creating with one request_id at once give one answer",
          "[service][idempotency][cluster]") {
  if (storage::test::pg_test_url().empty()) {
    WARN("DISPATCH_TEST_PG_URL is not set: PostgreSQL race skipped (run under scripts/with-postgres)");
    return;
  }
  storage::test::PgSchema schema;
  auto a = storage::Database::open(schema.url());
  REQUIRE(a);
  auto b = storage::Database::open(schema.url());
  REQUIRE(b);
  service::IdempotentRequests ids_a(**a);
  service::IdempotentRequests ids_b(**b);
  // Both looked and found nothing (the race), then each creates in its own transaction.
  for (auto* ids : {&ids_a, &ids_b}) {
    auto seen = ids->replay("commands/send", std::string("r-1"), k_body);
    REQUIRE(seen);
    REQUIRE_FALSE(seen->has_value());
  }
  std::promise<void> a_recorded;
  std::promise<void> b_started;
  auto a_done = std::async(std::launch::async, [&] {
    return (*a)->transaction([&]() -> core::Status {
      auto st = ids_a.record("commands/send", std::string("r-1"), k_body, {{"command_id", "A"}}, k_now);
      a_recorded.set_value();
      // Commit only once B is in its transaction (its insert then waits for this commit on the key).
      b_started.get_future().wait();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      return st;
    });
  });
  a_recorded.get_future().wait();
  auto b_st = (*b)->transaction([&]() -> core::Status {
    b_started.set_value();
    return ids_b.record("commands/send", std::string("r-1"), k_body, {{"command_id", "B"}}, k_now);
  });
  REQUIRE(a_done.get());
  REQUIRE_FALSE(b_st);
  CHECK(b_st.error().code == core::ErrorCode::conflict);
  auto answer = ids_b.after_failed_create("commands/send", std::string("r-1"), k_body, b_st.error());
  REQUIRE(answer);
  CHECK((*answer)["command_id"] == "A");
}
