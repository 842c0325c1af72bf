#include "protocol/command_requests.h"

#include <catch2/catch.hpp>
#include <string>

using namespace dispatch::protocol;
using dispatch::core::ErrorCode;
using nlohmann::json;

namespace {

json with(json base, const json& changes) {
  for (auto& [k, v] : changes.items()) {
    if (v.is_null())
      base.erase(k);
    else
      base[k] = v;
  }
  return base;
}

}  // namespace

TEST_CASE("commands/send requests are parsed or refused by rule", "[protocol][command_requests]") {
  const json reboot{{"type", "reboot"}, {"hardware_ids", {"dev-1"}}};
  const json exec{{"type", "exec"}, {"command", "ls"}, {"arguments", {"-l"}}, {"tags", {"b", "a", "b"}}};
  struct {
    const char* rule;
    json body;
    std::string error;  // empty: accepted
  } cases[] = {
      {"a reboot of named devices", reboot, ""},
      {"exec with a command and tags", exec, ""},
      {"firmware without a package means the latest", {{"type", "firmware"}, {"tags", {"t"}}}, ""},
      {"firmware with a package", {{"type", "firmware"}, {"package_id", "p-1"}, {"tags", {"t"}}}, ""},
      {"async execution", with(reboot, {{"execution", "async"}}), ""},
      {"null fields are absent", with(reboot, {{"ttl_s", json()}, {"description", json()}}), ""},
      {"type is required", json{{"hardware_ids", {"dev-1"}}}, "missing required field 'type'"},
      {"type must be known", with(reboot, {{"type", "format"}}),
       "field 'type' must be one of exec, firmware, reboot, shutdown, ping, health"},
      {"execution must be known", with(reboot, {{"execution", "later"}}),
       "field 'execution' must be one of sync, async"},
      {"arguments are strings", with(exec, {{"arguments", {1}}}),
       "field 'arguments' must be an array of strings"},
      {"package_id is an object id", with(reboot, {{"package_id", "a b"}}),
       "invalid package_id 'a b': must match ^[A-Za-z0-9_.:-]{1,128}$"},
      {"hardware ids are checked", with(reboot, {{"hardware_ids", {"a/b"}}}),
       "invalid hardware_ids 'a/b': must match ^[A-Za-z0-9_-]{3,128}$"},
      {"tags are object ids", with(reboot, {{"tags", {"a b"}}}),
       "invalid tag in 'tags': tags must match ^[A-Za-z0-9_.:-]{1,128}$"},
      {"ttl at least a second", with(reboot, {{"ttl_s", 0}}), "field 'ttl_s' must be between 1 and 31536000"},
      {"ttl at most a year", with(reboot, {{"ttl_s", 31536001}}),
       "field 'ttl_s' must be between 1 and 31536000"},
      {"request_id is an object id", with(reboot, {{"request_id", "a b"}}),
       "invalid request_id 'a b': must match ^[A-Za-z0-9_.:-]{1,128}$"},
      {"exec needs a command", with(exec, {{"command", ""}}), "type 'exec' needs a non-empty 'command'"},
      {"firmware takes no command",
       {{"type", "firmware"}, {"command", "x"}, {"tags", {"t"}}},
       "type 'firmware' takes 'package_id' (or none for the latest package), not 'command' or 'arguments'"},
      {"reboot takes no arguments", with(reboot, {{"arguments", {"now"}}}),
       "type 'reboot' takes no 'command' or 'arguments'"},
      {"reboot takes no package", with(reboot, {{"package_id", "p-1"}}),
       "type 'reboot' takes no 'package_id'"},
      {"a target is required", json{{"type", "ping"}}, "no targets: give 'hardware_ids' or 'tags'"},
      {"empty target lists are no targets", json{{"type", "ping"}, {"hardware_ids", json::array()}},
       "no targets: give 'hardware_ids' or 'tags'"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = parse_send_command(c.body);
    if (c.error.empty()) {
      CHECK(r.ok());
    } else {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::bad_request);
      CHECK(r.error().message == c.error);
    }
  }
}

TEST_CASE("a parsed send request carries typed fields", "[protocol][command_requests]") {
  auto r = parse_send_command({{"type", "exec"},
                               {"command", "ls"},
                               {"arguments", {"-l"}},
                               {"tags", {"b", "a", "b"}},
                               {"hardware_ids", {"dev-2", "dev-1"}},
                               {"execution", "async"},
                               {"ttl_s", 60},
                               {"request_id", "r-1"}});
  REQUIRE(r.ok());
  CHECK(r->type == CommandType::exec);
  CHECK(r->type_name == "exec");
  CHECK(r->execution == Execution::async);
  CHECK(r->command == "ls");
  CHECK(r->arguments == std::vector<std::string>{"-l"});
  CHECK(r->tags == std::vector<std::string>{"a", "b"});
  CHECK(r->hardware_ids == std::vector<std::string>{"dev-2", "dev-1"});
  CHECK(r->ttl_s == 60);
  CHECK(r->request_id == "r-1");
  CHECK_FALSE(r->package_id);
  CHECK_FALSE(r->description);
}

TEST_CASE("commands/get, cancel and list requests are parsed or refused by rule",
          "[protocol][command_requests]") {
  struct {
    const char* rule;
    json body;
    std::string error;
  } refs[] = {
      {"a command id", {{"command_id", "01HZ"}}, ""},
      {"command_id is required", json::object(), "missing required field 'command_id'"},
      {"command_id is an object id",
       {{"command_id", "a/b"}},
       "invalid command_id 'a/b': must match ^[A-Za-z0-9_.:-]{1,128}$"},
      {"command_id is a string", {{"command_id", 5}}, "field 'command_id' must be a string"},
  };
  for (const auto& c : refs) {
    INFO(c.rule);
    auto r = parse_command_ref(c.body);
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
    int limit;
  } lists[] = {
      {"defaults: the first 100", json::object(), "", 100},
      {"a page after a command id", {{"limit", 5}, {"after", "01HZ"}}, "", 5},
      {"a device filter", {{"hardware_id", "dev-1"}}, "", 100},
      {"null filter is none", {{"hardware_id", nullptr}}, "", 100},
      {"limit at least 1", {{"limit", 0}}, "field 'limit' must be between 1 and 1000", 0},
      {"limit at most 1000", {{"limit", 1001}}, "field 'limit' must be between 1 and 1000", 0},
      {"limit is an integer", {{"limit", "5"}}, "field 'limit' must be an integer", 0},
      {"after is a command id",
       {{"after", "a b"}},
       "invalid after 'a b': must match ^[A-Za-z0-9_.:-]{1,128}$",
       0},
      {"hardware_id is checked",
       {{"hardware_id", "x"}},
       "invalid hardware_id 'x': must match ^[A-Za-z0-9_-]{3,128}$",
       0},
  };
  for (const auto& c : lists) {
    INFO(c.rule);
    auto r = parse_list_commands(c.body);
    if (c.error.empty()) {
      REQUIRE(r.ok());
      CHECK(r->page.limit == c.limit);
      continue;
    }
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::bad_request);
    CHECK(r.error().message == c.error);
  }
}
