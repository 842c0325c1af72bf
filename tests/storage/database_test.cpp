#include "storage/database.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "storage/commands.h"
#include "storage/nonces.h"
#include "tests/storage/storage_fixture.h"
#include "tests/support/process.h"

namespace dispatch::storage {
namespace {

using Catch::Generators::from_range;
using core::ErrorCode;
using test::backends;
using test::TestDb;

std::int64_t count_rows(Database& db, const std::string& table) {
  auto q = db.prepare("SELECT COUNT(*) FROM " + table);
  REQUIRE(q->executeStep());
  return q->getColumn(0).getInt64();
}

std::string pragma(Database& db, const std::string& name) {
  return db.db().execAndGet("PRAGMA " + name).getString();
}

TEST_CASE("open applies the explicit pragmas", "[storage][database]") {
  dispatch::testing::TempDir dir;
  auto db = Database::open(dir.path() + "/p.db");
  REQUIRE(db.ok());
  struct {
    const char* rule;
    const char* pragma;
    const char* expected;
  } cases[] = {
      {"file databases use the WAL journal", "journal_mode", "wal"},
      {"commits are synced fully (FULL = 2)", "synchronous", "2"},
      {"foreign keys are enforced", "foreign_keys", "1"},
      {"writers wait 5 s for each other", "busy_timeout", "5000"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(pragma(**db, c.pragma) == c.expected);
  }
}

// The temporary files SQLite has open in this process (it deletes them at once, so only /proc shows them).
int open_sqlite_temp_files() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.find("etilqs_") != std::string::npos) ++n;
  }
  return n;
}

// Fills blobs with rows of 2,000 bytes: two to a 4 KiB page.
void fill_blobs(Database& d, int rows) {
  d.exec("CREATE TABLE blobs(x BLOB)");
  REQUIRE(d.transaction([&]() -> core::Status {
             for (int i = 0; i < rows; ++i) d.exec("INSERT INTO blobs(x) VALUES(randomblob(2000))");
             return {};
           }).ok());
}

TEST_CASE("a savepoint's sub-journal stays in memory: no temporary file for a handler's pages",
          "[storage][database]") {
  dispatch::testing::TempDir dir;
  auto db = Database::open(dir.path() + "/s.db");
  REQUIRE(db.ok());
  Database& d = **db;
  fill_blobs(d, 50);
  // A transaction whose savepoint (as every handler's) rewrites 25 existing pages: SQLite copies each into
  // the sub-journal, about 100 KiB, past SQLite's default spill of 64 KiB (a temporary file created,
  // written and deleted) and within ours (storage/database.cpp).
  int temp_files = -1;
  REQUIRE(d.transaction([&]() -> core::Status {
             return d.transaction([&]() -> core::Status {
               d.exec("UPDATE blobs SET x = randomblob(2000)");
               temp_files = open_sqlite_temp_files();
               return {};
             });
           }).ok());
  CHECK(temp_files == 0);
  CHECK(count_rows(d, "blobs") == 50);
}

TEST_CASE("a savepoint larger than the in-memory sub-journal spills to a file, commits and rolls back",
          "[storage][database]") {
  // Regression: with the sub-journal limit at 256 KiB, spilling wrote a 256 KiB chunk in one call, which
  // SQLite's unix VFS truncates to 0 bytes, and every such savepoint failed with "database or disk is
  // full" (a 20,000-device campaign tick did).
  dispatch::testing::TempDir dir;
  auto db = Database::open(dir.path() + "/big.db");
  REQUIRE(db.ok());
  Database& d = **db;
  fill_blobs(d, 300);
  auto checksum = [&] {
    return d.db().execAndGet("SELECT sum(length(x) + unicode(x)) FROM blobs").getInt64();
  };
  const std::int64_t before = checksum();

  // 150 pages, about 600 KiB of sub-journal: past the in-memory limit, so it goes to a temporary file.
  int temp_files = -1;
  const core::Status rolled_back = d.transaction([&]() -> core::Status {
    const core::Status inner = d.transaction([&]() -> core::Status {
      d.exec("UPDATE blobs SET x = randomblob(2001)");
      temp_files = open_sqlite_temp_files();
      return core::make_error(ErrorCode::conflict, "undo the savepoint");
    });
    REQUIRE(!inner.ok());
    CHECK(inner.error().code == ErrorCode::conflict);
    return {};
  });
  REQUIRE(rolled_back.ok());
  CHECK(temp_files >= 1);
  CHECK(checksum() == before);  // read back from the spilled sub-journal

  const core::Status committed = d.transaction([&]() -> core::Status {
    return d.transaction([&]() -> core::Status {
      d.exec("UPDATE blobs SET x = zeroblob(2002)");
      return {};
    });
  });
  REQUIRE(committed.ok());
  CHECK(d.db().execAndGet("SELECT count(*) FROM blobs WHERE length(x) = 2002").getInt64() == 300);
}

TEST_CASE("a fresh database gets every migration and reopening keeps it", "[storage][database]") {
  dispatch::testing::TempDir dir;
  const std::string path = dir.path() + "/m.db";
  const int newest = schema_migrations().back().version;
  {
    auto db = Database::open(path);
    REQUIRE(db.ok());
    CHECK((*db)->schema_version() == newest);
    NonceStore nonces(**db);
    REQUIRE(nonces.insert_if_new("n-1", 1).ok());
  }
  auto again = Database::open(path);
  REQUIRE(again.ok());
  CHECK((*again)->schema_version() == newest);
  CHECK(count_rows(**again, "schema_version") == 1);
  CHECK(count_rows(**again, "nonces") == 1);  // reopening did not re-create tables
}

TEST_CASE("migrations apply in order and only the pending ones", "[storage][database]") {
  dispatch::testing::TempDir dir;
  const std::string path = dir.path() + "/steps.db";
  std::vector<Migration> v1 = {{1, "CREATE TABLE a(x INTEGER)"}};
  std::vector<Migration> v2 = {{1, "CREATE TABLE a(x INTEGER)"}, {2, "INSERT INTO a(x) VALUES(7)"}};
  {
    auto db = Database::open(path, v1);
    REQUIRE(db.ok());
    CHECK((*db)->schema_version() == 1);
  }
  {
    auto db = Database::open(path, v2);
    REQUIRE(db.ok());
    CHECK((*db)->schema_version() == 2);
  }
  auto db = Database::open(path, v2);
  REQUIRE(db.ok());
  CHECK(count_rows(**db, "a") == 1);  // step 2 ran once
}

TEST_CASE("a failing migration leaves the previous version intact", "[storage][database]") {
  dispatch::testing::TempDir dir;
  const std::string path = dir.path() + "/bad.db";
  std::vector<Migration> steps = {{1, "CREATE TABLE a(x INTEGER)"},
                                  {2, "CREATE TABLE b(y INTEGER); INSERT INTO nowhere VALUES(1)"}};
  auto db = Database::open(path, steps);
  REQUIRE_FALSE(db.ok());
  CHECK(db.error().code == ErrorCode::internal);
  auto v1 = Database::open(path, {{1, "CREATE TABLE a(x INTEGER)"}});
  REQUIRE(v1.ok());
  CHECK((*v1)->schema_version() == 1);
  CHECK_FALSE((*v1)->db().tableExists("b"));  // step 2 rolled back as a whole
}

std::string schema_dump(Database& db) {
  std::string out;
  if (db.backend() == Backend::sqlite) {
    SQLite::Statement q(db.db(), "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name");
    while (q.executeStep()) out += q.getColumn(0).getString() + ";\n";
    return out;
  }
  // PostgreSQL: columns, constraints and indexes of the connection's schema, from the catalogue, in a
  // stable order and without the schema's (per-test) name.
  const char* const queries[] = {
      "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || "
      "CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END || "
      "COALESCE(' DEFAULT ' || column_default, '') || COALESCE(' COLLATE ' || collation_name, '') || "
      "CASE WHEN is_identity = 'YES' THEN ' IDENTITY ' || identity_generation ELSE '' END "
      "FROM information_schema.columns WHERE table_schema = current_schema() "
      "ORDER BY table_name, ordinal_position",
      "SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || "
      "pg_get_constraintdef(oid) "
      "FROM pg_constraint WHERE connamespace = current_schema()::regnamespace ORDER BY 1",
      "SELECT 'index ' || replace(indexdef, current_schema() || '.', '') FROM pg_indexes "
      "WHERE schemaname = current_schema() ORDER BY indexname",
  };
  for (const char* sql : queries) {
    auto q = db.prepare(sql);
    while (q->executeStep()) out += q->getColumn(0).getString() + "\n";
  }
  return out;
}

std::string golden_path(Backend backend, int version) {
  return std::string(DISPATCH_SOURCE_DIR) + "/tests/storage/data/" +
         (backend == Backend::sqlite ? "schema_v" : "pg_schema_v") + std::to_string(version) + ".sql";
}

// The migrations up to and including version.
std::vector<Migration> migrations_until(Backend backend, int version) {
  std::vector<Migration> steps;
  for (const Migration& m : schema_migrations(backend)) {
    if (m.version <= version) steps.push_back(m);
  }
  return steps;
}

// The golden files pin every released schema version of each backend: a released migration must never
// change (add a new one instead). Regenerate only when adding a version: DISPATCH_WRITE_SCHEMA=1
// test_storage (with DISPATCH_TEST_PG_URL set for the PostgreSQL files).
TEST_CASE("every released schema version matches its golden file", "[storage][database]") {
  const std::string backend = GENERATE(from_range(std::vector<std::string>{"memory", "postgres"}));
  if (backend == "postgres" && test::pg_test_url().empty()) return;
  const Backend kind = backend == "postgres" ? Backend::postgres : Backend::sqlite;
  for (const Migration& m : schema_migrations(kind)) {
    INFO(backend << " version " << m.version);
    std::unique_ptr<test::PgSchema> schema;
    if (kind == Backend::postgres) schema = std::make_unique<test::PgSchema>();
    auto db = Database::open(schema ? schema->url() : ":memory:", migrations_until(kind, m.version));
    if (!db.ok()) FAIL(db.error().message);
    CHECK((*db)->schema_version() == m.version);
    const std::string dump = schema_dump(**db);
    if (std::getenv("DISPATCH_WRITE_SCHEMA") != nullptr) {
      std::ofstream(golden_path(kind, m.version)) << dump;
    }
    CHECK(dump == dispatch::testing::read_file(golden_path(kind, m.version)));
  }
}

TEST_CASE("every past schema version upgrades to the newest one", "[storage][database]") {
  const std::string backend = GENERATE(from_range(test::shared_backend_names()));
  const Backend kind = backend == "postgres" ? Backend::postgres : Backend::sqlite;
  const int newest = schema_migrations(kind).back().version;
  std::string fresh;
  {
    test::TestDb t(backend);
    fresh = schema_dump(*t);
  }
  for (int from = 1; from < newest; ++from) {
    INFO(backend << " from version " << from);
    dispatch::testing::TempDir dir;
    std::unique_ptr<test::PgSchema> schema;
    if (kind == Backend::postgres) schema = std::make_unique<test::PgSchema>();
    const std::string location = schema ? schema->url() : dir.path() + "/old.db";
    {
      auto old = Database::open(location, migrations_until(kind, from));
      REQUIRE(old.ok());
      REQUIRE((*old)->schema_version() == from);
      // A row written by the old version survives the upgrade.
      (*old)->exec("INSERT INTO nonces(nonce_key, t) VALUES('old', 1)");
    }
    auto upgraded = Database::open(location);
    REQUIRE(upgraded.ok());
    CHECK((*upgraded)->schema_version() == newest);
    CHECK(schema_dump(**upgraded) == fresh);
    CHECK(count_rows(**upgraded, "nonces") == 1);
  }
}

// SQLite compiles a CHECK's IN list of more than two constants into a temporary b-tree built for every row
// it checks (issue 16: a fifth of a campaign's database time). v11 wrote the hot tables' state CHECKs as
// equalities; this keeps any write of a state from building one again.
TEST_CASE("no write of a delivery's or an execution's state builds a temporary b-tree per row",
          "[storage][database]") {
  TestDb t("memory");
  const char* const writes[] = {
      "INSERT INTO deliveries(command_id, hardware_id, command_line, state, created_at) "
      "VALUES('c', 'h', 'l', 'queued', 1)",
      "UPDATE deliveries SET state = 'sent', sent_at = 2 WHERE command_id = 'c' AND hardware_id = 'h'",
      "INSERT INTO campaign_executions(campaign_id, hardware_id, group_index, state, updated_at) "
      "VALUES('c', 'h', 0, 'queued', 1) ON CONFLICT DO NOTHING",
      "UPDATE campaign_executions SET state = 'sent', attempt = 1 WHERE campaign_id = 'c' AND hardware_id = "
      "'h'",
  };
  for (const char* sql : writes) {
    INFO(sql);
    SQLite::Statement q((*t).db(), std::string("EXPLAIN ") + sql);
    int ephemeral = 0;
    while (q.executeStep()) ephemeral += q.getColumn(1).getString() == "OpenEphemeral";
    CHECK(ephemeral == 0);
  }
}

TEST_CASE("v11 rebuilds deliveries and executions with their rows, rowids and state rule",
          "[storage][database]") {
  dispatch::testing::TempDir dir;
  const std::string path = dir.path() + "/v10.db";
  {
    auto old = Database::open(path, migrations_until(Backend::sqlite, 10));
    REQUIRE(old.ok());
    Database& db = **old;
    db.exec("INSERT INTO commands(id, type, execution, created_at) VALUES('cmd-1', 'exec', 'sync', 1)");
    db.exec(
        "INSERT INTO deliveries(rowid, command_id, hardware_id, command_line, state, created_at, owner) "
        "VALUES(7, 'cmd-1', 'dev-1', 'line', 'sent', 1, 'a'), (9, 'cmd-1', 'dev-2', 'line', 'queued', 1, "
        "NULL)");
    db.exec(
        "INSERT INTO campaigns(id, name, type, document_json, state, created_at, updated_at) "
        "VALUES('camp-1', 'n', 'exec', '{}', 'running', 1, 1)");
    db.exec(
        "INSERT INTO campaign_executions(campaign_id, hardware_id, group_index, state, updated_at, "
        "version_at_send, published_attempt) VALUES('camp-1', 'dev-1', 0, 'timed_out', 1, '1.2.3', 2)");
  }
  auto db = Database::open(path);
  REQUIRE(db.ok());
  CHECK((*db)->schema_version() >= 11);
  SQLite::Statement d((*db)->db(), "SELECT rowid, hardware_id, state, owner FROM deliveries ORDER BY rowid");
  REQUIRE(d.executeStep());
  CHECK(d.getColumn(0).getInt64() == 7);
  CHECK(d.getColumn(3).getString() == "a");
  REQUIRE(d.executeStep());
  CHECK(d.getColumn(0).getInt64() == 9);
  CHECK(d.getColumn(2).getString() == "queued");
  CHECK_FALSE(d.executeStep());
  SQLite::Statement e((*db)->db(),
                      "SELECT state, version_at_send, published_attempt FROM campaign_executions");
  REQUIRE(e.executeStep());
  CHECK(e.getColumn(0).getString() == "timed_out");
  CHECK(e.getColumn(1).getString() == "1.2.3");
  CHECK(e.getColumn(2).getInt() == 2);
  // The rule itself is unchanged: an unknown state is refused, a cascade still reaches the rows.
  CHECK_THROWS((*db)->exec("UPDATE deliveries SET state = 'lost' WHERE rowid = 7"));
  CHECK_THROWS((*db)->exec("UPDATE campaign_executions SET state = 'expired'"));
  (*db)->exec("DELETE FROM commands WHERE id = 'cmd-1'");
  CHECK(count_rows(**db, "deliveries") == 0);
}

TEST_CASE("a database newer than this build is refused", "[storage][database]") {
  dispatch::testing::TempDir dir;
  const std::string path = dir.path() + "/newer.db";
  {
    auto db = Database::open(path);
    REQUIRE(db.ok());
    (*db)->db().exec("UPDATE schema_version SET version = 99");
  }
  auto db = Database::open(path);
  REQUIRE_FALSE(db.ok());
  CHECK(db.error().code == ErrorCode::unavailable);
  CHECK(db.error().message == "database schema version 99 is newer than this build (" +
                                  std::to_string(schema_migrations().back().version) + ")");
}

TEST_CASE("a file that cannot be opened is unavailable", "[storage][database]") {
  auto db = Database::open("/nonexistent-dir-h3/sub/x.db");
  REQUIRE_FALSE(db.ok());
  CHECK(db.error().code == ErrorCode::unavailable);
}

TEST_CASE("transactions commit, roll back and nest", "[storage][database]") {
  TestDb t(GENERATE(backends()));
  Database& db = *t;
  auto insert = [&](const std::string& key) {
    db.exec("INSERT INTO meta(key, value) VALUES('" + key + "', 'v')");
  };
  auto has = [&](const std::string& key) {
    auto q = db.prepare("SELECT COUNT(*) FROM meta WHERE key = ?");
    q->bind(1, key);
    q->executeStep();
    return q->getColumn(0).getInt() == 1;
  };

  SECTION("ok commits") {
    REQUIRE(db.transaction([&]() -> core::Status {
                insert("a");
                return {};
              }).ok());
    CHECK(has("a"));
  }
  SECTION("an error result rolls back and is returned unchanged") {
    auto s = db.transaction([&]() -> core::Status {
      insert("a");
      return core::make_error(ErrorCode::conflict, "no");
    });
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::conflict);
    CHECK_FALSE(has("a"));
  }
  SECTION("an exception rolls back and becomes internal") {
    auto s = db.transaction([&]() -> core::Result<int> {
      insert("a");
      throw std::runtime_error("boom");
    });
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::internal);
    CHECK_FALSE(has("a"));
  }
  SECTION("a unique violation becomes conflict") {
    insert("a");
    auto s = db.transaction([&]() -> core::Status {
      insert("a");
      return {};
    });
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::conflict);
  }
  SECTION("a failed inner transaction rolls back only itself") {
    auto s = db.transaction([&]() -> core::Status {
      insert("outer");
      auto inner = db.transaction([&]() -> core::Status {
        insert("inner");
        return core::make_error(ErrorCode::not_found, "inner fails");
      });
      CHECK(inner.error().code == ErrorCode::not_found);
      return {};
    });
    REQUIRE(s.ok());
    CHECK(has("outer"));
    CHECK_FALSE(has("inner"));
  }
  SECTION("a failed outer transaction rolls back committed inner ones") {
    auto s = db.transaction([&]() -> core::Status {
      REQUIRE(db.transaction([&]() -> core::Status {
                  insert("inner");
                  return {};
                }).ok());
      return core::make_error(ErrorCode::internal, "outer fails");
    });
    REQUIRE_FALSE(s.ok());
    CHECK_FALSE(has("inner"));
    CHECK_FALSE(db.in_transaction());
  }
  SECTION("the result value of a successful transaction is returned") {
    auto r = db.transaction([&]() -> core::Result<int> { return 42; });
    REQUIRE(r.ok());
    CHECK(*r == 42);
  }
}

TEST_CASE("statement(): a failed statement inside a transaction leaves none of its changes and the rest",
          "[storage][database]") {
  TestDb t(GENERATE(backends()));
  Database& db = *t;
  auto count = [&] { return count_rows(db, "meta"); };
  const std::int64_t before = count();
  auto s = db.transaction([&]() -> core::Status {
    db.exec("INSERT INTO meta(key, value) VALUES('a', 'v')");
    // Three rows, the last of which collides with 'a': the statement fails after writing two of them.
    auto failed = db.statement([&]() -> core::Status {
      db.exec("INSERT INTO meta(key, value) VALUES('b', 'v'), ('c', 'v'), ('a', 'v')");
      return {};
    });
    REQUIRE_FALSE(failed.ok());
    CHECK(failed.error().code == ErrorCode::conflict);
    // The enclosing transaction goes on (on PostgreSQL because statement() kept a savepoint there).
    auto ok = db.statement([&]() -> core::Status {
      db.exec("INSERT INTO meta(key, value) VALUES('d', 'v')");
      return {};
    });
    CHECK(ok.ok());
    auto read = db.read([&]() -> core::Result<std::int64_t> { return count(); });
    REQUIRE(read.ok());
    CHECK(*read == before + 2);
    return {};
  });
  REQUIRE(s.ok());
  CHECK(count() == before + 2);
  // Outside a transaction statement() is one of its own.
  REQUIRE(db.statement([&]() -> core::Status {
              db.exec("INSERT INTO meta(key, value) VALUES('e', 'v')");
              return {};
            }).ok());
  CHECK(count() == before + 3);
  CHECK_FALSE(db.in_transaction());
}

TEST_CASE("on SQLite, read() and statement() inside a transaction open no savepoint", "[storage][database]") {
  dispatch::testing::TempDir dir;
  auto opened = Database::open(dir.path() + "/sp.db");
  REQUIRE(opened.ok());
  Database& db = **opened;
  // Every statement SQLite starts, as its text.
  std::vector<std::string> started;
  sqlite3_trace_v2(
      db.db().getHandle(), SQLITE_TRACE_STMT,
      [](unsigned, void* ctx, void*, void* x) -> int {
        static_cast<std::vector<std::string>*>(ctx)->push_back(static_cast<const char*>(x));
        return 0;
      },
      &started);
  auto savepoints = [&] {
    return std::count_if(started.begin(), started.end(),
                         [](const std::string& s) { return s.rfind("SAVEPOINT", 0) == 0; });
  };
  REQUIRE(db.transaction([&]() -> core::Status {
              REQUIRE(db.read([&]() -> core::Result<std::int64_t> { return count_rows(db, "meta"); }).ok());
              REQUIRE(db.statement([&]() -> core::Status {
                          db.exec("INSERT INTO meta(key, value) VALUES('a', 'v')");
                          return {};
                        }).ok());
              CHECK(savepoints() == 0);
              // A transaction() inside one still is a savepoint.
              REQUIRE(db.transaction([&]() -> core::Status { return {}; }).ok());
              CHECK(savepoints() == 1);
              return {};
            }).ok());
  sqlite3_trace_v2(db.db().getHandle(), 0, nullptr, nullptr);
  auto q = db.prepare("SELECT COUNT(*) FROM meta WHERE key = 'a'");
  REQUIRE(q->executeStep());
  CHECK(q->getColumn(0).getInt() == 1);
}

TEST_CASE("integrity_check reports ok on a sound database", "[storage][database]") {
  TestDb t(GENERATE(backends()));
  auto r = (*t).integrity_check();
  REQUIRE(r.ok());
  CHECK(*r == "ok");
}

// A child process writes many deliveries inside one transaction (and, in one row of the table,
// commits them) and is killed with SIGKILL; the parent then finds a sound file holding all or none.
TEST_CASE("kill -9 in the middle of a transaction leaves all or nothing", "[storage][database][crash]") {
  constexpr int k_rows = 30'000;
  struct {
    const char* rule;
    bool commit_before_kill;
    std::int64_t expected_rows;
  } cases[] = {
      {"an uncommitted transaction disappears entirely", false, 0},
      {"a committed transaction survives entirely", true, k_rows},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    dispatch::testing::TempDir dir;
    const std::string path = dir.path() + "/crash.db";
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      auto db = Database::open(path);
      if (!db.ok()) ::_exit(2);
      CommandStore commands(**db);
      CommandRow command = test::make_command("cmd-crash", 1);
      std::vector<DeliveryRow> rows(k_rows);
      for (int i = 0; i < k_rows; ++i) {
        rows[i].hardware_id = "dev-" + std::to_string(i);
        rows[i].command_line = "cmd-crash es echo " + std::string(200, 'x');
        rows[i].created_at = 1;
      }
      auto signal_parent_and_wait = [&] {
        char byte = 'x';
        if (::write(fds[1], &byte, 1) != 1) ::_exit(3);
        for (;;) ::pause();
      };
      if (c.commit_before_kill) {
        if (!commands.create_with_deliveries(command, rows).ok()) ::_exit(4);
        signal_parent_and_wait();
      }
      // The store runs as a savepoint inside this outer transaction, which is never committed.
      (void)(*db)->transaction([&]() -> core::Status {
        if (!commands.create_with_deliveries(command, rows).ok()) ::_exit(4);
        signal_parent_and_wait();
        return {};
      });
      ::_exit(5);
    }
    ::close(fds[1]);
    char byte = 0;
    const ssize_t n = ::read(fds[0], &byte, 1);
    ::close(fds[0]);
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(n == 1);  // the child reached the point of the kill
    REQUIRE(WIFSIGNALED(status));

    auto db = Database::open(path);
    REQUIRE(db.ok());
    auto check = (*db)->integrity_check();
    REQUIRE(check.ok());
    CHECK(*check == "ok");
    CHECK(count_rows(**db, "deliveries") == c.expected_rows);
    CHECK(count_rows(**db, "commands") == (c.expected_rows == 0 ? 0 : 1));
  }
}

}  // namespace
}  // namespace dispatch::storage
