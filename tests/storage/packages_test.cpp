#include "storage/packages.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/storage/storage_fixture.h"

namespace dispatch::storage {
namespace {

using core::ErrorCode;
using test::backends;
using test::TestDb;
using V = std::vector<std::string>;

PackageRow make_package(const std::string& id, const std::string& name, V tags, bool available = true) {
  PackageRow p;
  p.id = id;
  p.name = name;
  p.version = "1.0.0";
  p.tags = std::move(tags);
  p.available = available;
  p.attributes = {{"arch", "arm64"}};
  p.created_at = 10;
  p.updated_at = 10;
  return p;
}

TEST_CASE("packages are stored with their tags and found by filters", "[storage][packages]") {
  TestDb t(GENERATE(backends()));
  PackageStore store(*t);
  PackageRow ext = make_package("p2", "fw", {"eu"});
  ext.type = "external";
  ext.state = "ready";
  ext.url = "https://example.com/fw.bin";
  ext.prerequisite_version = "0.9.0";
  ext.prerelease_ok = true;
  REQUIRE(store.insert(make_package("p1", "fw", {"eu", "canary"})).ok());
  REQUIRE(store.insert(ext).ok());
  REQUIRE(store.insert(make_package("p3", "modem", {}, false)).ok());

  auto got = store.get("p2");
  REQUIRE(got.ok());
  CHECK(got->type == "external");
  CHECK(got->url == "https://example.com/fw.bin");
  CHECK(got->prerequisite_version == "0.9.0");
  CHECK(got->prerelease_ok);
  CHECK(got->attributes.at("arch") == "arm64");
  CHECK(store.get("p1")->tags == V{"canary", "eu"});

  auto ids = [&](PackageQuery q) {
    auto rows = store.list(q);
    REQUIRE(rows.ok());
    V out;
    for (const auto& r : *rows) out.push_back(r.id);
    return out;
  };
  PackageQuery by_name, by_tag, unavailable, paged;
  by_name.name = "fw";
  by_tag.tag = "canary";
  unavailable.available = false;
  paged.after = "p1";
  paged.limit = 1;
  struct {
    const char* rule;
    PackageQuery query;
    V expected;
  } cases[] = {
      {"no filter lists all by id", PackageQuery{}, {"p1", "p2", "p3"}},
      {"name filters", by_name, {"p1", "p2"}},
      {"tag filters", by_tag, {"p1"}},
      {"availability filters", unavailable, {"p3"}},
      {"after and limit page", paged, {"p2"}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(ids(c.query) == c.expected);
  }
}

TEST_CASE("package writes refuse bad or unknown rows", "[storage][packages]") {
  TestDb t(GENERATE(backends()));
  PackageStore store(*t);
  REQUIRE(store.insert(make_package("p1", "fw", {})).ok());
  PackageRow bad_type = make_package("p2", "fw", {});
  bad_type.type = "ftp";
  struct {
    const char* rule;
    core::Status status;
    ErrorCode expected;
  } cases[] = {
      {"an id is used once", store.insert(make_package("p1", "fw", {})), ErrorCode::conflict},
      {"type is internal or external", store.insert(bad_type), ErrorCode::internal},
      {"update of an unknown package", store.update("nope", true, std::nullopt, 1), ErrorCode::not_found},
      {"remove of an unknown package", store.remove("nope"), ErrorCode::not_found},
      {"set_ready of an unknown package", store.set_ready("nope", "/f", 1, "ab", 1), ErrorCode::not_found},
      {"chunks of an unknown package", store.record_chunk("nope", 0, 10), ErrorCode::not_found},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    REQUIRE_FALSE(c.status.ok());
    CHECK(c.status.error().code == c.expected);
  }
}

TEST_CASE("update, upload bookkeeping and set_ready", "[storage][packages]") {
  TestDb t(GENERATE(backends()));
  PackageStore store(*t);
  REQUIRE(store.insert(make_package("p1", "fw", {"eu"}, false)).ok());
  REQUIRE(store.update("p1", true, std::nullopt, 20).ok());
  CHECK(store.get("p1")->available);
  CHECK(store.get("p1")->tags == V{"eu"});  // tags untouched when not given
  REQUIRE(store.update("p1", std::nullopt, V{"us"}, 21).ok());
  CHECK(store.get("p1")->available);  // availability untouched when not given
  CHECK(store.get("p1")->tags == V{"us"});

  REQUIRE(store.record_chunk("p1", 100, 100).ok());
  REQUIRE(store.record_chunk("p1", 0, 100).ok());
  REQUIRE(store.record_chunk("p1", 0, 100).ok());  // a re-sent chunk is recorded once
  CHECK(store.chunks("p1").value() == std::vector<ChunkRow>{{0, 100}, {100, 100}});
  REQUIRE(store.clear_chunks("p1").ok());
  CHECK(store.chunks("p1").value().empty());

  REQUIRE(store.record_chunk("p1", 0, 200).ok());
  REQUIRE(store.set_ready("p1", "/var/lib/dispatch/p1", 200, "abcd", 30).ok());
  PackageRow ready = store.get("p1").value();
  CHECK(ready.state == "ready");
  CHECK(ready.file_path == "/var/lib/dispatch/p1");
  CHECK(ready.size == 200);
  CHECK(ready.sha256 == "abcd");
  CHECK(store.chunks("p1").value().empty());

  REQUIRE(store.remove("p1").ok());
  CHECK(store.get("p1").error().code == ErrorCode::not_found);
}

}  // namespace
}  // namespace dispatch::storage
