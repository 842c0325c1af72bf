#include "protocol/device_requests.h"

#include <catch2/catch.hpp>
#include <string>

#include "protocol/core/signature.h"

using namespace dispatch::protocol;
using dispatch::core::ErrorCode;
using nlohmann::json;

TEST_CASE("devices/register requests are parsed or refused by rule", "[protocol][device_requests]") {
  const std::string pem = dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519).public_pem();
  const json good{{"hardware_id", "dev-1"}, {"public_key", pem}};
  auto with = [&](const char* field, json value) {
    json d = good;
    d[field] = std::move(value);
    return d;
  };
  struct {
    const char* rule;
    json body;
    std::string error;
  } cases[] = {
      {"a device with a key", good, ""},
      {"tags and attributes", with("tags", {"b", "a"}), ""},
      {"hardware_id is required", json{{"public_key", pem}}, "missing required field 'hardware_id'"},
      {"hardware_id is checked", with("hardware_id", "a/b"),
       "invalid hardware_id 'a/b': must match ^[A-Za-z0-9_-]{3,128}$"},
      {"the service's broker name is reserved", with("hardware_id", "dispatchd"),
       "hardware_id 'dispatchd' is reserved for a broker role"},
      {"the platform's broker name is reserved", with("hardware_id", "platform"),
       "hardware_id 'platform' is reserved for a broker role"},
      {"public_key is required", json{{"hardware_id", "dev-1"}}, "missing required field 'public_key'"},
      {"public_key must load", with("public_key", "nonsense"), ""},  // message from core, checked below
      {"tags are object ids", with("tags", {"a b"}),
       "invalid tag in 'tags': tags must match ^[A-Za-z0-9_.:-]{1,128}$"},
      {"attributes are strings", with("attributes", {{"a", 1}}),
       "field 'attributes' must be an object of strings"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = parse_register_device(c.body);
    if (std::string(c.rule) == "public_key must load") {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::bad_request);
      CHECK(r.error().message.rfind("field 'public_key': ", 0) == 0);
      continue;
    }
    if (c.error.empty()) {
      CHECK(r.ok());
      continue;
    }
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::bad_request);
    CHECK(r.error().message == c.error);
  }
  auto r = parse_register_device(with("tags", {"b", "a", "b"}));
  REQUIRE(r.ok());
  CHECK(r->key_type == "ed25519");
  CHECK(r->tags == std::vector<std::string>{"a", "b"});
}

TEST_CASE("devices/get, delete and list requests are parsed or refused by rule",
          "[protocol][device_requests]") {
  struct {
    const char* rule;
    json body;
    std::string error;
  } refs[] = {
      {"a hardware id", {{"hardware_id", "dev-1"}}, ""},
      {"hardware_id is required", json::object(), "missing required field 'hardware_id'"},
      {"hardware_id is checked",
       {{"hardware_id", "x"}},
       "invalid hardware_id 'x': must match ^[A-Za-z0-9_-]{3,128}$"},
  };
  for (const auto& c : refs) {
    INFO(c.rule);
    auto r = parse_device_ref(c.body);
    if (c.error.empty()) {
      CHECK(r.ok());
      continue;
    }
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::bad_request);
    CHECK(r.error().message == c.error);
  }

  struct {
    const char* rule;
    json body;
    std::string error;
  } lists[] = {
      {"defaults", json::object(), ""},
      {"a tag and a page after a hardware id", {{"tag", "t"}, {"limit", 2}, {"after", "dev-1"}}, ""},
      {"null after is the first page", {{"after", nullptr}}, ""},
      {"tag is an object id", {{"tag", "a b"}}, "invalid tag 'a b': must match ^[A-Za-z0-9_.:-]{1,128}$"},
      {"limit at most 1000", {{"limit", 1001}}, "field 'limit' must be between 1 and 1000"},
      {"after is a hardware id",
       {{"after", "a.b"}},
       "invalid after 'a.b': must match ^[A-Za-z0-9_-]{3,128}$"},
  };
  for (const auto& c : lists) {
    INFO(c.rule);
    auto r = parse_list_devices(c.body);
    if (c.error.empty()) {
      CHECK(r.ok());
      continue;
    }
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::bad_request);
    CHECK(r.error().message == c.error);
  }
  auto r = parse_list_devices({{"tag", "t"}, {"limit", 2}, {"after", "dev-1"}});
  REQUIRE(r.ok());
  CHECK(r->tag == "t");
  CHECK(r->page.limit == 2);
  CHECK(r->page.after == "dev-1");
}
