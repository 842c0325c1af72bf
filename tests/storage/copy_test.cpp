// storage/copy.h: a SQLite database copied into PostgreSQL table by table. PostgreSQL only: runs when
// DISPATCH_TEST_PG_URL is set (scripts/test, scripts/with-postgres); without it each test passes after
// checking that the variable is unset.
#include "storage/copy.h"

#include <catch2/catch.hpp>
#include <string>

#include "storage/commands.h"
#include "storage/database.h"
#include "storage/package_bytes.h"
#include "tests/storage/storage_fixture.h"

namespace dispatch::storage {
namespace {

using core::ErrorCode;
using test::PgSchema;

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

std::string text(Database& db, const std::string& sql) {
  auto q = db.prepare(sql);
  REQUIRE(q->executeStep());
  return q->getColumn(0).getString();
}

std::unique_ptr<Database> open(const std::string& location) {
  auto db = Database::open(location);
  REQUIRE(db.ok());
  return std::move(*db);
}

// A one-node database with rows in parent and child tables, NULLs, bytes and a deleted delivery (so that
// the rowids have a gap).
void fill(Database& db) {
  db.exec(R"sql(
INSERT INTO devices(hardware_id, public_key_pem, key_type, attributes, reported_version, created_at, updated_at)
  VALUES ('dev-1', 'pem', 'ed25519', '', '1.0.0', 1, 2), ('dev-2', 'pem', 'rsa', '', NULL, 3, 4);
INSERT INTO device_tags(hardware_id, tag) VALUES ('dev-1', 'fleet'), ('dev-2', 'fleet');
INSERT INTO commands(id, type, execution, command, created_at, request_id) VALUES ('c1', 'exec', 'sync', 'ls', 10, 'r1');
INSERT INTO deliveries(command_id, hardware_id, command_line, state, output, created_at, replied_at)
  VALUES ('c1', 'dev-1', 'c1 es ls', 'succeeded', 'it''s "quoted" ? ?1 $1', 10, 11),
         ('c1', 'dev-2', 'c1 es ls', 'sent', '', 10, NULL),
         ('c1', 'dev-3', 'c1 es ls', 'queued', '', 10, NULL);
DELETE FROM deliveries WHERE hardware_id = 'dev-2';
INSERT INTO package_bytes(package_id, kind, "offset", length, data) VALUES ('p1', 'bin', 0, 4, 'AAEC/w==');
INSERT INTO meta(key, value, created_at) VALUES ('request:r1', 'x', 5);
INSERT INTO instance_starts(instance_id, started_at) VALUES ('dispatchd', 7);
)sql");
}

TEST_CASE("a SQLite database is copied into PostgreSQL table by table, counts checked", "[storage][copy]") {
  if (pg_tests_off()) return;
  PgSchema schema;
  auto source = open(":memory:");
  fill(*source);
  auto target = open(schema.url());
  auto copied = target->transaction([&] { return copy_tables(*source, *target); });
  REQUIRE(copied.ok());

  // Every table of the schema, parents before their children.
  std::vector<std::string> order;
  for (const auto& t : *copied) order.push_back(t.table);
  auto position = [&](const std::string& name) {
    return std::find(order.begin(), order.end(), name) - order.begin();
  };
  CHECK(position("devices") < position("device_tags"));
  CHECK(position("commands") < position("deliveries"));
  CHECK(position("campaigns") < position("campaign_executions"));
  CHECK(static_cast<std::size_t>(position("leases")) < order.size());
  // The one node's start is copied like every table (harmless: older than any cluster instance's start).
  CHECK(scalar(*target, "SELECT started_at FROM instance_starts WHERE instance_id = 'dispatchd'") == 7);
  CHECK(std::find(order.begin(), order.end(), "schema_version") == order.end());
  for (const auto& t : *copied) {
    CHECK(t.rows == scalar(*source, "SELECT COUNT(*) FROM " + t.table));
  }
  CHECK(scalar(*target, "SELECT COUNT(*) FROM deliveries") == 2);
  CHECK(text(*target, "SELECT output FROM deliveries WHERE hardware_id = 'dev-1'") ==
        "it's \"quoted\" ? ?1 $1");
  CHECK(scalar(*target, "SELECT COUNT(*) FROM devices WHERE reported_version IS NULL") == 1);
  CHECK(scalar(*target, "SELECT created_at FROM meta WHERE key = 'request:r1'") == 5);
  // The rowids keep their order and gap; the identity continues after the largest.
  CHECK(scalar(*target, "SELECT rowid FROM deliveries WHERE hardware_id = 'dev-3'") ==
        scalar(*source, "SELECT rowid FROM deliveries WHERE hardware_id = 'dev-3'"));
  CommandStore commands(*target);
  REQUIRE(
      commands.create_with_deliveries(test::make_command("c2", 20), {test::make_delivery("c2", "dev-1", 20)})
          .ok());
  CHECK(scalar(*target, "SELECT rowid FROM deliveries WHERE command_id = 'c2'") == 4);
  // Bytes: Base64 text in SQLite, BYTEA in PostgreSQL.
  PackageBytesStore bytes(*target);
  auto read = bytes.read("p1", "bin", 0, 4);
  REQUIRE(read.ok());
  CHECK(*read == std::string("\x00\x01\x02\xff", 4));

  SECTION("a second copy into the database, now holding data, is refused and changes nothing") {
    auto again = target->transaction([&] { return copy_tables(*source, *target); });
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().code == ErrorCode::conflict);
    CHECK_THAT(again.error().message, Catch::Contains("already holds data") && Catch::Contains("devices: 2"));
    CHECK(scalar(*target, "SELECT COUNT(*) FROM devices") == 2);
  }
}

TEST_CASE("an empty target with the schema is accepted and nonempty_tables lists no table",
          "[storage][copy]") {
  if (pg_tests_off()) return;
  PgSchema schema;
  auto target = open(schema.url());
  auto none = nonempty_tables(*target);
  REQUIRE(none.ok());
  CHECK(none->empty());
  auto source = open(":memory:");
  auto copied = target->transaction([&] { return copy_tables(*source, *target); });
  REQUIRE(copied.ok());
  for (const auto& t : *copied) CHECK(t.rows == 0);
  CHECK(copied->size() >= 17);  // schema v6: 17 tables besides schema_version
}

TEST_CASE("a copy that cannot be complete is refused before anything is committed", "[storage][copy]") {
  if (pg_tests_off()) return;
  PgSchema schema;
  auto source = open(":memory:");
  fill(*source);
  auto target = open(schema.url());

  SECTION("a column only the source has") {
    source->exec("ALTER TABLE devices ADD COLUMN colour TEXT");
    auto r = target->transaction([&] { return copy_tables(*source, *target); });
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::bad_request);
    CHECK(r.error().message == "table devices: column colour of the source has no column in the target");
  }
  SECTION("a table only the source has") {
    source->exec("CREATE TABLE extra(x INTEGER)");
    auto r = target->transaction([&] { return copy_tables(*source, *target); });
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::bad_request);
    CHECK(r.error().message == "table extra of the source has no table in the target");
  }
  SECTION("a NUL byte in text (PostgreSQL text cannot hold it) rolls the whole copy back") {
    auto q = source->prepare("UPDATE devices SET attributes = ? WHERE hardware_id = 'dev-2'");
    q->bind(1, std::string("a\0b", 3));
    q->exec();
    auto r = target->transaction([&] { return copy_tables(*source, *target); });
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message ==
          "table devices: column attributes holds a NUL byte, which PostgreSQL text cannot hold");
    auto held = nonempty_tables(*target);
    REQUIRE(held.ok());
    CHECK(held->empty());
  }
  SECTION("the wrong direction") {
    auto r = copy_tables(*target, *source);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::bad_request);
  }
}

}  // namespace
}  // namespace dispatch::storage
