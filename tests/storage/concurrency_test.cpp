// What several service instances must decide once, decided in the database: each test runs the same
// operation from several connections (one per thread, as separate instances would) on a shared SQLite
// file and, when DISPATCH_TEST_PG_URL is set, on PostgreSQL, and counts the winners.
#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "storage/commands.h"
#include "storage/database.h"
#include "storage/idempotency.h"
#include "storage/nonces.h"
#include "storage/rate_windows.h"
#include "tests/storage/storage_fixture.h"

namespace dispatch::storage {
namespace {

using core::ErrorCode;
using test::TestDb;

// Runs work(connection, thread index) on `threads` connections of t's database at once (all start
// together) and returns when every thread is done.
void race(const TestDb& t, int threads, const std::function<void(Database&, int)>& work) {
  std::vector<std::unique_ptr<Database>> connections;
  for (int i = 0; i < threads; ++i) connections.push_back(t.connect());
  std::latch start(threads);
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&, i] {
      start.arrive_and_wait();
      work(*connections[static_cast<std::size_t>(i)], i);
    });
  }
  for (auto& w : workers) w.join();
}

TEST_CASE("of connections racing to record a nonce exactly one wins", "[storage][nonces][race]") {
  TestDb t(GENERATE(test::shared_backends()));
  constexpr int k_nonces = 50;
  constexpr int k_threads = 3;
  std::atomic<int> fresh{0}, seen{0}, failed{0};
  race(t, k_threads, [&](Database& db, int) {
    NonceStore nonces(db);
    for (int i = 0; i < k_nonces; ++i) {
      auto r = nonces.insert_if_new("dev-a\nn-" + std::to_string(i), 1000);
      if (!r.ok()) {
        ++failed;
      } else if (*r) {
        ++fresh;
      } else {
        ++seen;
      }
    }
  });
  CHECK(fresh == k_nonces);
  CHECK(seen == k_nonces * (k_threads - 1));
  CHECK(failed == 0);
  CHECK(NonceStore(*t).count().value() == k_nonces);
}

TEST_CASE("the rate window is exact across connections", "[storage][rate][race]") {
  TestDb t(GENERATE(test::shared_backends()));
  constexpr int k_limit = 5;
  constexpr std::int64_t k_window_ms = 300'000;
  constexpr int k_threads = 4;
  constexpr int k_hits = 6;
  std::atomic<int> allowed{0}, refused{0}, failed{0};
  race(t, k_threads, [&](Database& db, int) {
    RateWindowStore rate(db);
    for (int i = 0; i < k_hits; ++i) {
      auto r = rate.hit("prov:dev-a", 10'000, k_limit, k_window_ms);
      if (!r.ok()) {
        ++failed;
      } else if (r->allowed) {
        ++allowed;
      } else {
        ++refused;
        CHECK(r->retry_after_s >= 1);
      }
    }
  });
  CHECK(allowed == k_limit);  // 5 per window, whichever connection answered
  CHECK(refused == k_threads * k_hits - k_limit);
  CHECK(failed == 0);
  RateWindowStore rate(*t);
  // Every hit counted, refused ones too.
  CHECK(rate.events("prov:dev-a", 0).value().size() == static_cast<std::size_t>(k_threads * k_hits));
  SECTION("the window slides: an event counts for window_ms, not at window_ms") {
    CHECK_FALSE(rate.hit("prov:dev-a", 10'000 + k_window_ms - 1, k_limit, k_window_ms).value().allowed);
    CHECK(rate.hit("prov:dev-b", 10'000, k_limit, k_window_ms).value().allowed);  // keys are separate
  }
}

TEST_CASE("hit decides like the in-memory limiter", "[storage][rate]") {
  TestDb t(GENERATE(test::backends()));
  RateWindowStore rate(*t);
  struct {
    const char* rule;
    core::TimeMs now;
    bool allowed;
    std::int64_t retry_after_s;
  } cases[] = {
      {"the first event is allowed", 0, true, 0},
      {"the second is allowed", 1'000, true, 0},
      {"the third, over a limit of 2, is refused until two events have left", 2'000, false, 9},
      {"refused events count: still refused when the first has left", 10'000, false, 2},
      {"allowed once enough events have left the window", 12'000, true, 0},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = rate.hit("k", c.now, 2, 10'000);
    REQUIRE(r.ok());
    CHECK(r->allowed == c.allowed);
    CHECK(r->retry_after_s == c.retry_after_s);
  }
}

TEST_CASE("of connections racing with one request_id exactly one records it",
          "[storage][idempotency][race]") {
  TestDb t(GENERATE(test::shared_backends()));
  constexpr int k_requests = 20;
  constexpr int k_threads = 3;
  std::atomic<int> recorded{0}, conflict{0}, other{0};
  std::atomic<int> commands_created{0}, commands_conflict{0};
  race(t, k_threads, [&](Database& db, int thread) {
    IdempotencyStore idempotency(db);
    CommandStore commands(db);
    for (int i = 0; i < k_requests; ++i) {
      const std::string request_id = "req-" + std::to_string(i);
      // As the service does: the object and the answer in one transaction.
      auto st = db.transaction([&]() -> core::Status {
        return idempotency.put("commands/send", request_id, "fp", "answer " + std::to_string(thread), 1);
      });
      if (st.ok()) {
        ++recorded;
      } else if (st.error().code == ErrorCode::conflict) {
        ++conflict;
      } else {
        ++other;
      }
      CommandRow c = test::make_command("cmd-" + std::to_string(thread) + "-" + std::to_string(i), 1);
      c.request_id = request_id;
      auto created = commands.create_with_deliveries(c, {});
      if (created.ok()) {
        ++commands_created;
      } else if (created.error().code == ErrorCode::conflict) {
        ++commands_conflict;
      } else {
        ++other;
      }
    }
  });
  CHECK(recorded == k_requests);
  CHECK(conflict == k_requests * (k_threads - 1));
  CHECK(commands_created == k_requests);
  CHECK(commands_conflict == k_requests * (k_threads - 1));
  CHECK(other == 0);
  // The recorded answer is the winner's, whole.
  auto found = IdempotencyStore(*t).find("commands/send", "req-0");
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK((*found)->fingerprint == "fp");
  CHECK((*found)->answer.rfind("answer ", 0) == 0);
}

}  // namespace
}  // namespace dispatch::storage
