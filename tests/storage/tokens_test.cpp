#include "storage/tokens.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <limits>
#include <thread>
#include <vector>

#include "tests/storage/storage_fixture.h"
#include "tests/support/process.h"

namespace dispatch::storage {
namespace {

using core::ErrorCode;
using test::backends;
using test::TestDb;

constexpr std::int64_t k_no_bound = std::numeric_limits<std::int64_t>::max();

DownloadTokenRow make_token(const std::string& hash, const std::string& hw = "dev-a") {
  DownloadTokenRow row;
  row.token_hash = hash;
  row.hardware_id = hw;
  row.package_id = "pkg-1";
  row.created_at = 1000;
  row.expires_at = 5000;
  return row;
}

TEST_CASE("tokens are stored by hash and unique", "[storage][tokens]") {
  TestDb t(GENERATE(backends()));
  TokenStore store(*t);
  REQUIRE(store.insert(make_token("h1")).ok());
  auto got = store.get_by_hash("h1");
  REQUIRE(got.ok());
  CHECK(got->hardware_id == "dev-a");
  CHECK(got->expires_at == 5000);
  CHECK_FALSE(got->spent);
  CHECK(got->pulled_bytes == 0);
  CHECK(store.insert(make_token("h1")).error().code == ErrorCode::conflict);
  CHECK(store.get_by_hash("h2").error().code == ErrorCode::not_found);
}

TEST_CASE("serve checks the token and spends it once every byte was served", "[storage][tokens]") {
  TestDb t(GENERATE(backends()));
  TokenStore store(*t);
  REQUIRE(store.insert(make_token("h1")).ok());
  struct {
    const char* rule;
    std::string hash;
    std::string hw;
    core::TimeMs now;
    std::int64_t offset, length;
    std::optional<ErrorCode> error;
    bool spent_now;
    std::int64_t served_bytes;
  } cases[] = {
      {"an unknown token is invalid", "hx", "dev-a", 2000, 0, 10, ErrorCode::token_invalid, false, 0},
      {"another device's token is invalid", "h1", "dev-b", 2000, 0, 10, ErrorCode::token_invalid, false, 0},
      {"an expired token is invalid", "h1", "dev-a", 5000, 0, 10, ErrorCode::token_invalid, false, 0},
      {"a range past the end is a bad request", "h1", "dev-a", 2000, 95, 10, ErrorCode::bad_request, false,
       0},
      {"an empty range is a bad request", "h1", "dev-a", 2000, 0, 0, ErrorCode::bad_request, false, 0},
      {"a negative offset is a bad request", "h1", "dev-a", 2000, -1, 10, ErrorCode::bad_request, false, 0},
      {"the last chunk may come first", "h1", "dev-a", 2000, 90, 10, std::nullopt, false, 10},
      {"a chunk may be re-requested", "h1", "dev-a", 2000, 90, 10, std::nullopt, false, 10},
      {"overlapping chunks count each byte once", "h1", "dev-a", 2000, 0, 60, std::nullopt, false, 70},
      {"overlap is merged", "h1", "dev-a", 2000, 50, 20, std::nullopt, false, 80},
      {"covering the last gap spends the token", "h1", "dev-a", 2000, 70, 20, std::nullopt, true, 100},
      {"a spent token is invalid", "h1", "dev-a", 2000, 0, 10, ErrorCode::token_invalid, false, 0},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = store.serve(c.hash, c.hw, c.now, c.offset, c.length, 100, k_no_bound);
    if (c.error) {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == *c.error);
    } else {
      REQUIRE(r.ok());
      CHECK(r->spent_now == c.spent_now);
      CHECK(r->served_bytes == c.served_bytes);
    }
  }
  CHECK(store.get_by_hash("h1")->spent);
  CHECK(store.get_by_hash("h1")->pulled_bytes == 10 + 10 + 60 + 20 + 20);  // re-requests counted
}

TEST_CASE("serve counts every byte pulled and spends the token that would pass the bound",
          "[storage][tokens]") {
  TestDb t(GENERATE(backends()));
  TokenStore store(*t);
  REQUIRE(store.insert(make_token("h1")).ok());
  constexpr std::int64_t k_bound = 25;  // of a 100-byte package
  struct {
    const char* rule;
    std::int64_t length;
    std::optional<ErrorCode> error;
    bool exhausted;
    std::int64_t pulled_bytes;
  } cases[] = {
      {"a chunk under the bound is counted", 10, std::nullopt, false, 10},
      {"a re-request is counted again", 10, std::nullopt, false, 20},
      {"a chunk past the bound is refused and spends the token", 10, std::nullopt, true, 20},
      {"then the token is spent, whatever the length", 1, ErrorCode::token_invalid, false, 0},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = store.serve("h1", "dev-a", 2000, 0, c.length, 100, k_bound);
    if (c.error) {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == *c.error);
      continue;
    }
    REQUIRE(r.ok());
    CHECK(r->exhausted == c.exhausted);
    CHECK_FALSE(r->spent_now);
    CHECK(r->pulled_bytes == c.pulled_bytes);
  }
  // The refused bytes are not counted, and the spend committed.
  auto row = store.get_by_hash("h1");
  REQUIRE(row.ok());
  CHECK(row->spent);
  CHECK(row->pulled_bytes == 20);
  CHECK(row->served_bytes == 10);

  // Exactly at the bound is allowed; a negative bound is a bad request.
  REQUIRE(store.insert(make_token("h2")).ok());
  CHECK_FALSE(store.serve("h2", "dev-a", 2000, 0, 25, 100, k_bound)->exhausted);
  CHECK(store.serve("h2", "dev-a", 2000, 0, 1, 100, k_bound)->exhausted);
  REQUIRE(store.insert(make_token("h3")).ok());
  CHECK(store.serve("h3", "dev-a", 2000, 0, 1, 100, -1).error().code == ErrorCode::bad_request);
}

TEST_CASE("spend marks a token spent", "[storage][tokens]") {
  TestDb t(GENERATE(backends()));
  TokenStore store(*t);
  REQUIRE(store.insert(make_token("h1")).ok());
  REQUIRE(store.serve("h1", "dev-a", 2000, 0, 10, 100, k_no_bound).ok());
  REQUIRE(store.spend("h1").ok());
  CHECK(store.get_by_hash("h1")->spent);
  CHECK(store.serve("h1", "dev-a", 2000, 10, 10, 100, k_no_bound).error().code == ErrorCode::token_invalid);
  CHECK(store.spend("h1").ok());
  CHECK(store.spend("unknown").ok());
}

TEST_CASE("an empty package spends its token on the first request", "[storage][tokens]") {
  TestDb t(GENERATE(backends()));
  TokenStore store(*t);
  REQUIRE(store.insert(make_token("h0")).ok());
  auto r = store.serve("h0", "dev-a", 2000, 0, 0, 0, 0);
  REQUIRE(r.ok());
  CHECK(r->spent_now);
  CHECK(store.serve("h0", "dev-a", 2000, 0, 0, 0, 0).error().code == ErrorCode::token_invalid);
}

TEST_CASE("removing a package's tokens keeps the spent ones, pruning drops expired", "[storage][tokens]") {
  TestDb t(GENERATE(backends()));
  TokenStore store(*t);
  REQUIRE(store.insert(make_token("h1")).ok());
  REQUIRE(store.insert(make_token("h2")).ok());
  REQUIRE(store.serve("h2", "dev-a", 2000, 0, 10, 10, k_no_bound)->spent_now);
  auto removed = store.remove_for_package("pkg-1");
  REQUIRE(removed.ok());
  CHECK(*removed == 1);
  CHECK(store.get_by_hash("h1").error().code == ErrorCode::not_found);
  CHECK(store.get_by_hash("h2").ok());
  CHECK(store.prune_expired(4999).value() == 0);
  CHECK(store.prune_expired(5000).value() == 1);
}

// Two connections (one per thread, as two service instances would have) race for the last chunk.
TEST_CASE("of two connections racing for the last chunk exactly one spends the token",
          "[storage][tokens][race]") {
  TestDb t(GENERATE(test::shared_backends()));  // a SQLite file or PostgreSQL
  const std::string path = t.db->path();
  constexpr int k_rounds = 20;
  {
    TokenStore store(*t);
    for (int i = 0; i < k_rounds; ++i) {
      const std::string hash = "race-" + std::to_string(i);
      REQUIRE(store.insert(make_token(hash)).ok());
      REQUIRE(store.serve(hash, "dev-a", 2000, 0, 50, 100, k_no_bound).ok());
    }
  }
  std::atomic<int> spent_now{0}, invalid{0}, other{0};
  auto worker = [&](std::atomic<int>* ready) {
    auto db = Database::open(path);
    if (!db.ok()) {
      other += k_rounds;
      return;
    }
    TokenStore store(**db);
    ready->fetch_add(1);
    while (ready->load() < 2) std::this_thread::yield();
    for (int i = 0; i < k_rounds; ++i) {
      auto r = store.serve("race-" + std::to_string(i), "dev-a", 2000, 50, 50, 100, k_no_bound);
      if (r.ok() && r->spent_now) {
        ++spent_now;
      } else if (!r.ok() && r.error().code == ErrorCode::token_invalid) {
        ++invalid;
      } else {
        ++other;
      }
    }
  };
  std::atomic<int> ready{0};
  std::thread a(worker, &ready), b(worker, &ready);
  a.join();
  b.join();
  CHECK(spent_now == k_rounds);
  CHECK(invalid == k_rounds);
  CHECK(other == 0);
}

// Two connections pull re-requested chunks of one token at once (two instances answering one device
// through a shared subscription): together they stop exactly at the bound, and exactly one of them is
// told the token is exhausted.
TEST_CASE("connections racing past the byte bound together pull exactly the bound",
          "[storage][tokens][race]") {
  TestDb t(GENERATE(test::shared_backends()));  // a SQLite file or PostgreSQL
  const std::string path = t.db->path();
  constexpr int k_rounds = 8;
  constexpr std::int64_t k_chunk = 10, k_total = 100, k_bound = 3 * k_total;
  {
    TokenStore store(*t);
    for (int i = 0; i < k_rounds; ++i) REQUIRE(store.insert(make_token("bound-" + std::to_string(i))).ok());
  }
  std::atomic<int> served[k_rounds] = {};
  std::atomic<int> exhausted{0}, invalid{0}, other{0};
  auto worker = [&](std::atomic<int>* ready) {
    auto db = Database::open(path);
    if (!db.ok()) {
      other += k_rounds;
      return;
    }
    TokenStore store(**db);
    ready->fetch_add(1);
    while (ready->load() < 2) std::this_thread::yield();
    for (int i = 0; i < k_rounds; ++i) {
      for (;;) {  // chunk 0 again and again until refused: the ranges never cover the package
        auto r = store.serve("bound-" + std::to_string(i), "dev-a", 2000, 0, k_chunk, k_total, k_bound);
        if (r.ok() && !r->exhausted) {
          ++served[i];
          continue;
        }
        if (r.ok()) {
          ++exhausted;
        } else if (r.error().code == ErrorCode::token_invalid) {
          ++invalid;
        } else {
          ++other;
        }
        break;
      }
    }
  };
  std::atomic<int> ready{0};
  std::thread a(worker, &ready), b(worker, &ready);
  a.join();
  b.join();
  TokenStore store(*t);
  for (int i = 0; i < k_rounds; ++i) {
    INFO("token " << i);
    CHECK(served[i] * k_chunk == k_bound);
    auto row = store.get_by_hash("bound-" + std::to_string(i));
    REQUIRE(row.ok());
    CHECK(row->spent);
    CHECK(row->pulled_bytes == k_bound);
  }
  CHECK(exhausted == k_rounds);
  CHECK(invalid == k_rounds);
  CHECK(other == 0);
}

}  // namespace
}  // namespace dispatch::storage
