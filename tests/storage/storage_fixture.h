// Opens a fresh Database for a test: SQLite in memory, SQLite in a file in a temporary directory, and,
// when DISPATCH_TEST_PG_URL names a PostgreSQL database (scripts/test starts a private server and sets
// it), PostgreSQL in a fresh schema of that database (dropped at the end). Every store test runs on
// all of them.
#pragma once

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "storage/commands.h"
#include "storage/database.h"
#include "tests/support/process.h"

namespace dispatch::storage::test {

// The PostgreSQL test database's URL, or empty when PostgreSQL tests are off.
inline std::string pg_test_url() {
  const char* url = std::getenv("DISPATCH_TEST_PG_URL");
  return url == nullptr ? std::string() : std::string(url);
}

// A fresh schema in the PostgreSQL test database, dropped (with everything in it) by the destructor.
// url() connects with that schema first on the search path, so Database::open(url()) migrates into it.
class PgSchema {
 public:
  PgSchema() {
    static std::atomic<int> counter{0};
    name_ = "t_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    admin_ = std::make_unique<pqxx::connection>(pg_test_url());
    pqxx::nontransaction(*admin_).exec("DROP SCHEMA IF EXISTS " + name_ + " CASCADE; CREATE SCHEMA " + name_);
  }
  ~PgSchema() {
    try {
      pqxx::nontransaction(*admin_).exec("DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
    } catch (const std::exception&) {
      // A server that went away takes the schema with the test database's cluster.
    }
  }
  PgSchema(const PgSchema&) = delete;
  PgSchema& operator=(const PgSchema&) = delete;

  const std::string& name() const { return name_; }
  std::string url() const {
    const std::string base = pg_test_url();
    return base + (base.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + name_;
  }

 private:
  std::string name_;
  std::unique_ptr<pqxx::connection> admin_;
};

struct TestDb {
  std::unique_ptr<dispatch::testing::TempDir> dir;
  std::unique_ptr<PgSchema> schema;
  std::unique_ptr<Database> db;

  // backend: "memory", "file" or "postgres".
  explicit TestDb(const std::string& backend) {
    INFO("backend " << backend);
    std::string path = ":memory:";
    if (backend == "file") {
      dir = std::make_unique<dispatch::testing::TempDir>();
      path = dir->path() + "/dispatch.db";
    } else if (backend == "postgres") {
      schema = std::make_unique<PgSchema>();
      path = schema->url();
    }
    auto opened = Database::open(path);
    if (!opened.ok()) FAIL(opened.error().message);
    db = std::move(opened).value();
  }
  // A second connection to the same database (file or PostgreSQL; not in memory).
  std::unique_ptr<Database> connect() const {
    auto opened = Database::open(db->path());
    if (!opened.ok()) FAIL(opened.error().message);
    return std::move(opened).value();
  }
  ~TestDb() { db.reset(); }  // closes before the schema is dropped

  Database& operator*() { return *db; }
};

// The backends every store test runs on: "memory" and "file", and "postgres" when DISPATCH_TEST_PG_URL
// is set. Use as: TestDb t(GENERATE(backends()));
inline std::vector<std::string> backend_names() {
  std::vector<std::string> names = {"memory", "file"};
  if (!pg_test_url().empty()) names.push_back("postgres");
  return names;
}
inline auto backends() { return Catch::Generators::from_range(backend_names()); }
// The backends on which two connections share one database: "file", and "postgres" when set.
inline std::vector<std::string> shared_backend_names() {
  std::vector<std::string> names = {"file"};
  if (!pg_test_url().empty()) names.push_back("postgres");
  return names;
}
inline auto shared_backends() { return Catch::Generators::from_range(shared_backend_names()); }

// The Status of any Result, for tables of operations that should all fail the same way.
template <class T>
core::Status status_of(const core::Result<T>& r) {
  if (r.ok()) return {};
  return r.error();
}

inline CommandRow make_command(const std::string& id, core::TimeMs created_at) {
  CommandRow c;
  c.id = id;
  c.type = "exec";
  c.execution = "sync";
  c.command = "echo";
  c.arguments = {"a", "b c"};
  c.created_at = created_at;
  return c;
}

inline DeliveryRow make_delivery(const std::string& command_id, const std::string& hw,
                                 core::TimeMs created_at,
                                 std::optional<core::TimeMs> expires_at = std::nullopt) {
  DeliveryRow d;
  d.command_id = command_id;
  d.hardware_id = hw;
  d.command_line = command_id + " es echo a";
  d.created_at = created_at;
  d.expires_at = expires_at;
  return d;
}

}  // namespace dispatch::storage::test
