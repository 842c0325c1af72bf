// Opens a fresh Database for a test, either in memory or as a file in a temporary directory, so
// every store test runs on both.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "storage/commands.h"
#include "storage/database.h"
#include "tests/support/process.h"

namespace dispatch::storage::test {

struct TestDb {
  std::unique_ptr<dispatch::testing::TempDir> dir;
  std::unique_ptr<Database> db;

  // backend: "memory" or "file".
  explicit TestDb(const std::string& backend) {
    std::string path = ":memory:";
    if (backend == "file") {
      dir = std::make_unique<dispatch::testing::TempDir>();
      path = dir->path() + "/dispatch.db";
    }
    auto opened = Database::open(path);
    REQUIRE(opened.ok());
    db = std::move(opened).value();
  }

  Database& operator*() { return *db; }
};

// Use as: TestDb t(GENERATE(backends()));
inline auto backends() { return Catch::Generators::values<std::string>({"memory", "file"}); }

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
