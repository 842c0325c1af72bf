// LeaseStore: acquire, renew, release, the fence inside a transaction, and instances racing for one
// lease, on SQLite (memory and file) and PostgreSQL.
#include "storage/leases.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "storage/database.h"
#include "tests/storage/storage_fixture.h"

namespace dispatch::storage {
namespace {

using core::ErrorCode;
using test::TestDb;

constexpr std::int64_t k_ttl = 15'000;

int count_meta(Database& db, const std::string& key) {
  return db
      .read([&]() -> core::Result<int> {
        auto q = db.prepare("SELECT COUNT(*) FROM meta WHERE key = ?");
        q->bind(1, key);
        q->executeStep();
        return q->getColumn(0).getInt();
      })
      .value();
}

TEST_CASE("a lease is taken when free, kept by its holder and taken over only once it lapses",
          "[storage][leases]") {
  TestDb t(GENERATE(test::backends()));
  LeaseStore leases(*t);

  auto a = leases.acquire("campaign:c1", "inst-a", 1000, k_ttl);
  REQUIRE(a.ok());
  CHECK(a->holder == "inst-a");
  CHECK(a->token == 1);
  CHECK(a->expires_at == 1000 + k_ttl);

  // The holder acquiring again renews and keeps its token.
  auto again = leases.acquire("campaign:c1", "inst-a", 5000, k_ttl);
  REQUIRE(again.ok());
  CHECK(again->token == 1);
  CHECK(again->expires_at == 5000 + k_ttl);

  // Another instance is refused while the lease is live, up to the last millisecond.
  auto b = leases.acquire("campaign:c1", "inst-b", 5000 + k_ttl - 1, k_ttl);
  REQUIRE_FALSE(b.ok());
  CHECK(b.error().code == ErrorCode::conflict);

  // Once it lapses the other instance takes it with the next token.
  b = leases.acquire("campaign:c1", "inst-b", 5000 + k_ttl, k_ttl);
  REQUIRE(b.ok());
  CHECK(b->holder == "inst-b");
  CHECK(b->token == 2);

  // The old holder's renew, fence and release all see it lost.
  auto renewed = leases.renew("campaign:c1", "inst-a", 1, 30'000, k_ttl);
  REQUIRE_FALSE(renewed.ok());
  CHECK(renewed.error().code == ErrorCode::conflict);
  CHECK(renewed.error().message == "lease campaign:c1 lost");
  auto fenced = leases.check("campaign:c1", "inst-a", 1);
  REQUIRE_FALSE(fenced.ok());
  CHECK(fenced.error().code == ErrorCode::conflict);
  CHECK(leases.release("campaign:c1", "inst-a", 1).value() == false);
  CHECK(leases.get("campaign:c1")->holder == "inst-b");

  // The new holder renews with its token; releasing lets anybody take it, with the token moving on.
  CHECK(leases.check("campaign:c1", "inst-b", 2).ok());
  REQUIRE(leases.renew("campaign:c1", "inst-b", 2, 25'000, k_ttl).ok());
  CHECK(leases.get("campaign:c1")->expires_at == 25'000 + k_ttl);
  CHECK(leases.release("campaign:c1", "inst-b", 2).value() == true);
  CHECK(leases.release("campaign:c1", "inst-b", 2).value() == false);
  auto c = leases.acquire("campaign:c1", "inst-c", 26'000, k_ttl);
  REQUIRE(c.ok());
  CHECK(c->token == 3);

  // A holder whose lease lapsed and that nobody took renews with the same token (the fence never
  // moved); acquiring it afresh after the lapse gives the next token.
  REQUIRE(leases.renew("campaign:c1", "inst-c", 3, 26'000 + k_ttl + 5, k_ttl).ok());
  auto lapsed = leases.acquire("campaign:c1", "inst-c", 100'000, k_ttl);
  REQUIRE(lapsed.ok());
  CHECK(lapsed->token == 4);

  auto missing = leases.get("campaign:none");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::not_found);
}

TEST_CASE("lease arguments are checked", "[storage][leases]") {
  TestDb t(GENERATE(test::backends()));
  LeaseStore leases(*t);
  CHECK(leases.acquire("", "inst-a", 0, k_ttl).error().code == ErrorCode::bad_request);
  CHECK(leases.acquire("x", "", 0, k_ttl).error().code == ErrorCode::bad_request);
  CHECK(leases.acquire("x", "inst-a", 0, 0).error().code == ErrorCode::bad_request);
  CHECK(leases.renew("x", "inst-a", 1, 0, -5).error().code == ErrorCode::bad_request);
  CHECK(leases.list("x", 0).error().code == ErrorCode::bad_request);
  CHECK(leases.check("x", "inst-a", 1).error().code == ErrorCode::conflict);
}

TEST_CASE("take_over seizes a live lease with the next token and fences the old holder out",
          "[storage][leases]") {
  TestDb t(GENERATE(test::backends()));
  LeaseStore leases(*t);
  auto fresh = leases.take_over("campaign:t1", "inst-a", 0, k_ttl);
  REQUIRE(fresh.ok());
  CHECK(fresh->token == 1);
  CHECK(fresh->holder == "inst-a");
  // inst-a's lease is live; inst-b seizes it anyway.
  auto seized = leases.take_over("campaign:t1", "inst-b", 10, k_ttl);
  REQUIRE(seized.ok());
  CHECK(seized->token == 2);
  CHECK(seized->holder == "inst-b");
  CHECK(seized->expires_at == 10 + k_ttl);
  CHECK(leases.check("campaign:t1", "inst-a", 1).error().code == ErrorCode::conflict);
  CHECK(leases.renew("campaign:t1", "inst-a", 1, 20, k_ttl).error().code == ErrorCode::conflict);
  CHECK(leases.check("campaign:t1", "inst-b", 2).ok());
  CHECK(leases.acquire("campaign:t1", "inst-a", 20, k_ttl).error().code == ErrorCode::conflict);
  CHECK(leases.take_over("", "inst-a", 0, k_ttl).error().code == ErrorCode::bad_request);
}

TEST_CASE("leases are listed by name prefix", "[storage][leases]") {
  TestDb t(GENERATE(test::backends()));
  LeaseStore leases(*t);
  REQUIRE(leases.acquire("campaign:b", "inst-a", 0, k_ttl).ok());
  REQUIRE(leases.acquire("campaign:a", "inst-b", 0, k_ttl).ok());
  REQUIRE(leases.acquire("instance:inst-a", "inst-a", 0, k_ttl).ok());
  auto campaigns = leases.list("campaign:", 10);
  REQUIRE(campaigns.ok());
  REQUIRE(campaigns->size() == 2);
  CHECK((*campaigns)[0].name == "campaign:a");
  CHECK((*campaigns)[1].name == "campaign:b");
  CHECK(leases.list("campaign:", 1)->size() == 1);
  CHECK(leases.list("instance:", 10)->size() == 1);
  CHECK(leases.list("nothing:", 10)->empty());
}

TEST_CASE("a write fenced on a stale token is rolled back with a conflict", "[storage][leases]") {
  TestDb t(GENERATE(test::backends()));
  LeaseStore leases(*t);
  REQUIRE(leases.acquire("campaign:c1", "inst-a", 0, k_ttl).ok());

  // Fenced on the live token: the write commits.
  auto ok = t.db->transaction([&]() -> core::Status {
    t.db->exec("INSERT INTO meta(key, value) VALUES('fenced-ok', 'x')");
    return leases.check("campaign:c1", "inst-a", 1);
  });
  CHECK(ok.ok());
  CHECK(count_meta(*t, "fenced-ok") == 1);

  // Taken over: the old holder's fenced write fails and nothing of it stays.
  REQUIRE(leases.acquire("campaign:c1", "inst-b", k_ttl, k_ttl).ok());
  auto stale = t.db->transaction([&]() -> core::Status {
    t.db->exec("INSERT INTO meta(key, value) VALUES('fenced-stale', 'x')");
    return leases.check("campaign:c1", "inst-a", 1);
  });
  REQUIRE_FALSE(stale.ok());
  CHECK(stale.error().code == ErrorCode::conflict);
  CHECK(count_meta(*t, "fenced-stale") == 0);
}

TEST_CASE("of instances racing for one lease exactly one wins", "[storage][leases][race]") {
  TestDb t(GENERATE(test::shared_backends()));
  constexpr int k_threads = 4;
  constexpr int k_leases = 30;
  std::vector<std::unique_ptr<Database>> connections;
  for (int i = 0; i < k_threads; ++i) connections.push_back(t.connect());
  std::atomic<int> won{0}, refused{0}, failed{0};
  std::latch start(k_threads);
  std::vector<std::thread> workers;
  for (int i = 0; i < k_threads; ++i) {
    workers.emplace_back([&, i] {
      LeaseStore leases(*connections[static_cast<std::size_t>(i)]);
      start.arrive_and_wait();
      const std::string holder = "inst-" + std::to_string(i);
      for (int n = 0; n < k_leases; ++n) {
        // Free leases first, then the same leases once they lapsed: one winner each time.
        for (core::TimeMs now : {core::TimeMs{0}, core::TimeMs{k_ttl}}) {
          auto r = leases.acquire("campaign:" + std::to_string(n), holder, now, k_ttl);
          if (r.ok()) {
            ++won;
          } else if (r.error().code == ErrorCode::conflict) {
            ++refused;
          } else {
            ++failed;
          }
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  CHECK(failed == 0);
  // Every thread tries each lease at 0 before it tries it at k_ttl, so the first try of a lease is at 0:
  // it wins (token 1, live until k_ttl) and every other try at 0 is refused; the first try at k_ttl
  // finds it lapsed and wins (token 2, live until 2 * k_ttl) and every later try is refused. Two
  // winners per lease, whatever the interleaving.
  CHECK(won == 2 * k_leases);
  CHECK(refused == 2 * (k_threads - 1) * k_leases);
  LeaseStore leases(*t);
  auto rows = leases.list("campaign:", 100);
  REQUIRE(rows.ok());
  CHECK(rows->size() == static_cast<std::size_t>(k_leases));
  for (const LeaseRow& row : *rows) {
    CHECK(row.token == 2);
    CHECK(row.expires_at == 2 * k_ttl);
  }
}

TEST_CASE("a takeover waits for a fenced transaction in flight and fences it out afterwards",
          "[storage][leases][race]") {
  TestDb t(GENERATE(test::shared_backends()));
  auto other = t.connect();
  LeaseStore mine(*t);
  LeaseStore theirs(*other);
  REQUIRE(mine.acquire("campaign:c1", "inst-a", 0, k_ttl).ok());

  std::atomic<bool> committed{false};
  std::atomic<bool> taken{false}, taken_after_commit{false};
  std::thread takeover;
  auto fenced = t.db->transaction([&]() -> core::Status {
    if (auto ok = mine.check("campaign:c1", "inst-a", 1); !ok.ok()) return ok;
    // The lease has lapsed by the other instance's clock, but our fenced transaction is open: the
    // takeover must wait for it (row lock on PostgreSQL, the write lock on SQLite).
    takeover = std::thread([&] {
      auto r = theirs.acquire("campaign:c1", "inst-b", k_ttl, k_ttl);
      taken_after_commit = committed.load();
      taken = r.ok() && r->token == 2;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    t.db->exec("INSERT INTO meta(key, value) VALUES('in-flight', 'x')");
    committed = true;  // the COMMIT follows; a takeover that did not wait would return before this
    return {};
  });
  takeover.join();
  // The takeover returned only after our transaction's work (it had 200 ms to get in before it).
  CHECK(taken_after_commit.load());
  CHECK(fenced.ok());
  CHECK(taken.load());
  CHECK(count_meta(*t, "in-flight") == 1);
  CHECK(mine.check("campaign:c1", "inst-a", 1).error().code == ErrorCode::conflict);
}

}  // namespace
}  // namespace dispatch::storage
