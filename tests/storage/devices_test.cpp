#include "storage/devices.h"

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

DeviceRow make_device(const std::string& hw, V tags, const std::string& key = "PEM-1") {
  DeviceRow row;
  row.hardware_id = hw;
  row.public_key_pem = key;
  row.key_type = "ed25519";
  row.tags = std::move(tags);
  row.attributes = {{"site", "lab"}, {"odd key", "a:b 1"}};
  return row;
}

TEST_CASE("upsert registers and re-registers a device", "[storage][devices]") {
  TestDb t(GENERATE(backends()));
  DeviceStore store(*t);
  auto created = store.upsert(make_device("dev-a", {"eu", "canary", "eu"}), 100);
  REQUIRE(created.ok());
  CHECK(*created);
  REQUIRE(store.set_reported_version("dev-a", "1.2.3", 150).ok());
  REQUIRE(store.set_properties("dev-a", {{"health.firmware", "1.2.3"}, {"cpu", "arm"}}, 160).ok());
  REQUIRE(store.touch_last_seen("dev-a", 170).ok());

  DeviceRow again = make_device("dev-a", {"us"}, "PEM-2");
  again.attributes = {{"site", "field"}};
  auto second = store.upsert(again, 200);
  REQUIRE(second.ok());
  CHECK_FALSE(*second);

  auto got = store.get("dev-a");
  REQUIRE(got.ok());
  CHECK(got->public_key_pem == "PEM-2");
  CHECK(got->tags == V{"us"});
  CHECK(got->attributes == std::map<std::string, std::string>{{"site", "field"}});
  CHECK(got->created_at == 100);
  CHECK(got->updated_at == 200);
  // What the device reported survives re-registration.
  CHECK(got->reported_version == "1.2.3");
  CHECK(got->properties.at("cpu") == "arm");
  CHECK(got->last_seen == 170);
}

TEST_CASE("device updates of an unknown device are not_found", "[storage][devices]") {
  TestDb t(GENERATE(backends()));
  DeviceStore store(*t);
  struct {
    const char* rule;
    core::Status status;
  } cases[] = {
      {"get", test::status_of(store.get("nope"))},
      {"remove", store.remove("nope")},
      {"set_reported_version", store.set_reported_version("nope", "1.0.0", 1)},
      {"set_properties", test::status_of(store.set_properties("nope", {{"a", "b"}}, 1))},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    REQUIRE_FALSE(c.status.ok());
    CHECK(c.status.error().code == ErrorCode::not_found);
  }
}

TEST_CASE("properties merge and last_seen only moves forward", "[storage][devices]") {
  TestDb t(GENERATE(backends()));
  DeviceStore store(*t);
  REQUIRE(store.upsert(make_device("dev-a", {}), 1).ok());
  REQUIRE(store.upsert(make_device("dev-b", {}), 1).ok());
  REQUIRE(store.set_properties("dev-a", {{"a", "1"}, {"b", "2"}}, 2).ok());
  REQUIRE(store.set_properties("dev-a", {{"b", "3"}, {"c", "4"}}, 3).ok());
  CHECK(store.get("dev-a")->properties ==
        std::map<std::string, std::string>{{"a", "1"}, {"b", "3"}, {"c", "4"}});

  auto touched = store.touch_last_seen(V{"dev-a", "dev-b", "ghost"}, 50);
  REQUIRE(touched.ok());
  CHECK(*touched == 2);
  CHECK(store.touch_last_seen("dev-a", 40).value() == 0);  // older time does not move it back
  CHECK(store.get("dev-a")->last_seen == 50);
}

TEST_CASE("properties stay within their count and byte bounds, what passes them is dropped and counted",
          "[storage][devices]") {
  TestDb t(GENERATE(backends()));
  DeviceStore store(*t);
  REQUIRE(store.upsert(make_device("dev-a", {}), 1).ok());
  // Count bound 3: the fourth new name is dropped, an existing one is still updated.
  CHECK(store.set_properties("dev-a", {{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}}, 2, 3, 1000).value() ==
        1);
  CHECK(store.set_properties("dev-a", {{"a", "9"}, {"e", "5"}}, 3, 3, 1000).value() == 1);
  CHECK(store.get("dev-a")->properties ==
        std::map<std::string, std::string>{{"a", "9"}, {"b", "2"}, {"c", "3"}});
  // Byte bound 10 (names + values, 6 used): a value growing past it is dropped, the old one stays.
  CHECK(store.set_properties("dev-a", {{"b", "222222"}}, 4, 3, 10).value() == 1);
  CHECK(store.set_properties("dev-a", {{"b", "2222"}}, 5, 3, 10).value() == 0);
  CHECK(store.get("dev-a")->properties ==
        std::map<std::string, std::string>{{"a", "9"}, {"b", "2222"}, {"c", "3"}});
}

TEST_CASE("devices are found by tag, id list and pages", "[storage][devices]") {
  TestDb t(GENERATE(backends()));
  DeviceStore store(*t);
  REQUIRE(store.upsert(make_device("dev-c", {"eu"}), 1).ok());
  REQUIRE(store.upsert(make_device("dev-a", {"eu", "canary"}), 1).ok());
  REQUIRE(store.upsert(make_device("dev-b", {"us"}), 1).ok());
  REQUIRE(store.upsert(make_device("dev-d", {}), 1).ok());

  CHECK(store.hardware_ids_with_tags({"eu", "canary"}).value() == V{"dev-a", "dev-c"});
  CHECK(store.hardware_ids_with_tags({"us", "eu"}).value() == V{"dev-a", "dev-b", "dev-c"});
  CHECK(store.hardware_ids_with_tags({}).value().empty());
  CHECK(store.existing({"dev-d", "ghost", "dev-a", "dev-a"}).value() == V{"dev-a", "dev-d"});

  auto ids = [&](DeviceQuery q) {
    auto rows = store.list(q);
    REQUIRE(rows.ok());
    V out;
    for (const auto& r : *rows) out.push_back(r.hardware_id);
    return out;
  };
  struct {
    const char* rule;
    DeviceQuery query;
    V expected;
  } cases[] = {
      {"all devices ordered by id", {std::nullopt, 100, std::nullopt}, {"dev-a", "dev-b", "dev-c", "dev-d"}},
      {"a tag filters", {"eu", 100, std::nullopt}, {"dev-a", "dev-c"}},
      {"limit bounds the page", {std::nullopt, 2, std::nullopt}, {"dev-a", "dev-b"}},
      {"after is an exclusive cursor", {std::nullopt, 2, "dev-b"}, {"dev-c", "dev-d"}},
      {"tag and cursor combine", {"eu", 100, "dev-a"}, {"dev-c"}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(ids(c.query) == c.expected);
  }

  REQUIRE(store.remove("dev-a").ok());
  CHECK(store.hardware_ids_with_tags({"canary"}).value().empty());  // its tags went with it
}

}  // namespace
}  // namespace dispatch::storage
