// PostgreSQL-only behaviour of Database: reaching the server, losing it, error codes, and several
// instances migrating at once. Runs only when DISPATCH_TEST_PG_URL is set (scripts/test sets it);
// without it each test passes after checking that the variable is unset.
#include "storage/postgres.h"

#include <catch2/catch.hpp>
#include <latch>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "storage/database.h"
#include "storage/devices.h"
#include "storage/nonces.h"
#include "storage/tokens.h"
#include "tests/storage/storage_fixture.h"
#include "tests/support/process.h"

namespace dispatch::storage {
namespace {

using core::ErrorCode;
using test::PgSchema;
using test::TestDb;

bool pg_tests_off() {
  if (test::pg_test_url().empty()) {
    CHECK(std::getenv("DISPATCH_TEST_PG_URL") == nullptr);
    return true;
  }
  return false;
}

std::int64_t scalar(Database& db, const std::string& sql) {
  auto q = db.prepare(sql);
  REQUIRE(q->executeStep());
  return q->getColumn(0).getInt64();
}

TEST_CASE("postgresql URLs select the PostgreSQL backend", "[storage][postgres]") {
  struct {
    const char* location;
    bool postgres;
  } cases[] = {
      {"postgresql://dispatch@127.0.0.1:5432/dispatch", true},
      {"postgres://u@h/db", true},
      {"/var/lib/dispatch/dispatch.db", false},
      {":memory:", false},
      {"postgresql.db", false},
      {"host=127.0.0.1 dbname=x", false},  // key=value strings are not accepted
  };
  for (const auto& c : cases) {
    INFO(c.location);
    CHECK(is_postgres_url(c.location) == c.postgres);
  }
  // Placeholders: SQLite's numbering, quoted text untouched.
  CHECK(detail::postgres_placeholders("SELECT ? , ?4, ?, '?' , \"a?\" -- ?\n, ?") ==
        "SELECT $1 , $4, $5, '?' , \"a?\" -- ?\n, $6");
}

TEST_CASE("an unreachable PostgreSQL server is unavailable at open", "[storage][postgres]") {
  const int port = dispatch::testing::free_port();
  auto db = Database::open("postgresql://dispatch@127.0.0.1:" + std::to_string(port) + "/dispatch");
  REQUIRE_FALSE(db.ok());
  CHECK(db.error().code == ErrorCode::unavailable);
}

TEST_CASE("a lost PostgreSQL connection is unavailable, then reopened by the next transaction",
          "[storage][postgres]") {
  if (pg_tests_off()) return;
  TestDb t("postgres");
  NonceStore nonces(*t);
  REQUIRE(nonces.insert_if_new("n-1", 1).value());
  const std::int64_t pid = scalar(*t, "SELECT pg_backend_pid()");
  {
    pqxx::connection admin(test::pg_test_url());
    pqxx::nontransaction(admin).exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  }
  auto lost = nonces.insert_if_new("n-2", 1);
  REQUIRE_FALSE(lost.ok());
  CHECK(lost.error().code == ErrorCode::unavailable);
  // The next transaction connects again; the committed row is there, the failed one is not.
  auto again = nonces.insert_if_new("n-2", 1);
  REQUIRE(again.ok());
  CHECK(*again);
  CHECK(nonces.count().value() == 2);
  CHECK(scalar(*t, "SELECT pg_backend_pid()") != pid);
}

TEST_CASE("PostgreSQL errors map to the storage codes", "[storage][postgres]") {
  if (pg_tests_off()) return;
  TestDb t("postgres");
  Database& db = *t;
  TokenStore tokens(db);
  DownloadTokenRow row;
  row.token_hash = "h1";
  row.hardware_id = "dev-a";
  row.package_id = "p";
  row.expires_at = 10;
  REQUIRE(tokens.insert(row).ok());
  CHECK(tokens.insert(row).error().code == ErrorCode::conflict);  // unique violation
  auto fk = db.transaction([&]() -> core::Status {
    db.exec("INSERT INTO device_tags(hardware_id, tag) VALUES('nobody', 't')");
    return {};
  });
  CHECK(fk.error().code == ErrorCode::not_found);  // foreign-key violation
  auto syntax = db.transaction([&]() -> core::Status {
    db.exec("SELEKT 1");
    return {};
  });
  CHECK(syntax.error().code == ErrorCode::internal);
  // A failed statement inside a savepoint leaves the outer transaction usable.
  auto outer = db.transaction([&]() -> core::Status {
    CHECK(tokens.insert(row).error().code == ErrorCode::conflict);
    row.token_hash = "h2";
    return tokens.insert(row);
  });
  CHECK(outer.ok());
  CHECK(tokens.get_by_hash("h2").ok());
}

TEST_CASE("PostgreSQL migrations: newer refused, a failing step rolled back", "[storage][postgres]") {
  if (pg_tests_off()) return;
  {
    PgSchema schema;
    std::vector<Migration> steps = {{1, "CREATE TABLE a(x BIGINT)"},
                                    {2, "CREATE TABLE b(y BIGINT); INSERT INTO nowhere VALUES(1)"}};
    auto db = Database::open(schema.url(), steps);
    REQUIRE_FALSE(db.ok());
    CHECK(db.error().code == ErrorCode::internal);
    auto v1 = Database::open(schema.url(), {{1, "CREATE TABLE a(x BIGINT)"}});
    REQUIRE(v1.ok());
    CHECK((*v1)->schema_version() == 1);
    CHECK(scalar(**v1,
                 "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() "
                 "AND table_name = 'b'") == 0);
  }
  {
    PgSchema schema;
    {
      auto db = Database::open(schema.url());
      REQUIRE(db.ok());
      (*db)->exec("UPDATE schema_version SET version = 99");
    }
    auto db = Database::open(schema.url());
    REQUIRE_FALSE(db.ok());
    CHECK(db.error().code == ErrorCode::unavailable);
    CHECK(db.error().message == "database schema version 99 is newer than this build (" +
                                    std::to_string(schema_migrations(Backend::postgres).back().version) +
                                    ")");
  }
}

TEST_CASE("instances opening a fresh PostgreSQL database together migrate it once", "[storage][postgres]") {
  if (pg_tests_off()) return;
  PgSchema schema;
  constexpr int k_instances = 3;
  std::latch start(k_instances);
  std::vector<int> versions(k_instances, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < k_instances; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto db = Database::open(schema.url());
      versions[static_cast<std::size_t>(i)] = db.ok() ? (*db)->schema_version() : 0;
    });
  }
  for (auto& t : threads) t.join();
  const int newest = schema_migrations(Backend::postgres).back().version;
  for (int v : versions) CHECK(v == newest);
  auto db = Database::open(schema.url());
  REQUIRE(db.ok());
  CHECK(scalar(**db, "SELECT COUNT(*) FROM schema_version") == 1);
}

}  // namespace
}  // namespace dispatch::storage
