#include "campaigns/document.h"

#include <catch2/catch.hpp>

using namespace dispatch::campaigns;
using dispatch::core::ErrorCode;
using nlohmann::json;

namespace {

json protocol_example() {
  return json::parse(R"({"name":"fw 2.0 rollout", "type":"provisioning", "package_id":null,
 "command":null, "arguments":[], "execution":"sync",
 "groups":[{"hardware_ids":["dev-1"],"tags":["canary"]}, {"tags":["eu"]}, {"tags":["all"]}],
 "rate":{"per_minute":60000, "ramp":{"start_per_minute":600, "factor":2.0, "every_successes":100}},
 "batch_size":1000,
 "success":{"threshold_percent":95, "verify_version":true},
 "abort":{"failure_percent":5, "min_finished":50, "action":"pause"},
 "reply_timeout_s":900, "retries":{"max":2, "backoff_s":60},
 "window":{"not_before":"2026-12-01T00:00:00Z", "not_after":"2026-12-08T00:00:00Z"},
 "between_groups":{"pause_minutes":30},
 "conditions":[{"group":2,"stage":"entry","property":"health.firmware","op":"gte","value":"1.0.0","ignorable":true}]})");
}

json minimal() { return json::parse(R"({"name":"n","type":"reboot","groups":[{"tags":["all"]}]})"); }

}  // namespace

TEST_CASE("the PROTOCOL example parses with every field") {
  auto r = parse_campaign_document(protocol_example());
  REQUIRE(r.ok());
  const CampaignDocument& d = r.value();
  CHECK(d.name == "fw 2.0 rollout");
  CHECK(d.type == CampaignType::provisioning);
  CHECK_FALSE(d.package_id.has_value());
  REQUIRE(d.groups.size() == 3);
  CHECK(d.groups[0].hardware_ids == std::vector<std::string>{"dev-1"});
  CHECK(d.groups[2].tags == std::vector<std::string>{"all"});
  CHECK(d.rate.per_minute == 60000);
  REQUIRE(d.rate.ramp.has_value());
  CHECK(d.rate.ramp->start_per_minute == 600);
  CHECK(d.rate.ramp->factor == 2.0);
  CHECK(d.rate.ramp->every_successes == 100);
  CHECK(d.success.threshold_percent == 95.0);
  CHECK(d.success.verify_version);
  REQUIRE(d.abort.has_value());
  CHECK(d.abort->min_finished == 50);
  CHECK(d.abort->action == AbortAction::pause);
  CHECK(d.retries.max == 2);
  CHECK(d.retries.backoff_s == 60);
  REQUIRE(d.window.has_value());
  CHECK(d.window->not_before == 1'796'083'200'000);  // 2026-12-01T00:00:00Z
  CHECK(d.window->not_after == 1'796'688'000'000);
  CHECK(d.between_groups_pause_minutes == 30);
  REQUIRE(d.conditions.size() == 1);
  CHECK(d.conditions[0].group == 2);
  CHECK(d.conditions[0].op == ConditionOp::gte);
  CHECK(d.conditions[0].ignorable);
}

TEST_CASE("absent optional fields take the documented defaults") {
  auto r = parse_campaign_document(minimal());
  REQUIRE(r.ok());
  const CampaignDocument& d = r.value();
  CHECK(d.rate.per_minute == 60000);
  CHECK_FALSE(d.rate.ramp.has_value());
  CHECK(d.batch_size == 1000);
  CHECK(d.success.threshold_percent == 95.0);
  CHECK_FALSE(d.success.verify_version);
  CHECK_FALSE(d.abort.has_value());
  CHECK(d.reply_timeout_s == 900);
  CHECK(d.retries.max == 0);
  CHECK(d.retries.backoff_s == 60);
  CHECK_FALSE(d.window.has_value());
  CHECK(d.between_groups_pause_minutes == 0);
  CHECK(d.execution == ExecutionMode::sync);
}

TEST_CASE("to_json round-trips a parsed document") {
  for (const json& j : {protocol_example(), minimal()}) {
    auto first = parse_campaign_document(j);
    REQUIRE(first.ok());
    auto second = parse_campaign_document(to_json(first.value()));
    REQUIRE(second.ok());
    CHECK(second.value() == first.value());
  }
  json with_millis = minimal();
  with_millis["window"] = {{"not_before", "2026-12-01T00:00:00.250Z"}};
  auto d = parse_campaign_document(with_millis);
  REQUIRE(d.ok());
  CHECK(to_json(d.value())["window"]["not_before"] == "2026-12-01T00:00:00.250Z");
  CHECK(parse_campaign_document(to_json(d.value())).value() == d.value());
}

TEST_CASE("invalid documents are refused with bad_request and the exact message") {
  struct {
    const char* rule;
    const char* pointer;  // JSON pointer into the PROTOCOL example to replace ("" = whole document)
    json value;
    std::string message;
  } cases[] = {
      {"document must be an object", "", json::array(), "campaign document must be a JSON object"},
      {"name is required", "/name", "", "name is required"},
      {"type is required", "/type", nullptr, "type is required"},
      {"unknown type", "/type", "firmware", "unknown type 'firmware'"},
      {"execution sync or async", "/execution", "later", "execution must be sync or async"},
      {"no groups", "/groups", json::array(), "groups must hold at least one group"},
      {"groups not an array", "/groups", "all", "groups must hold at least one group"},
      {"group must be an object", "/groups/1", "eu", "group 2 must be an object"},
      {"empty group", "/groups/1", json::object(), "group 2 is empty"},
      {"empty lists are an empty group",
       "/groups/2",
       {{"hardware_ids", json::array()}, {"tags", json::array()}},
       "group 3 is empty"},
      {"hardware id with a slash", "/groups/0/hardware_ids/0", "dev/1",
       "group 1 has an invalid hardware id 'dev/1'"},
      {"hardware id with a wildcard", "/groups/0/hardware_ids/0", "dev+",
       "group 1 has an invalid hardware id 'dev+'"},
      {"hardware id too short", "/groups/0/hardware_ids/0", "d1", "group 1 has an invalid hardware id 'd1'"},
      {"hardware id too long", "/groups/0/hardware_ids/0", std::string(129, 'a'),
       "group 1 has an invalid hardware id '" + std::string(64, 'a') + "...'"},
      {"hardware id not a string", "/groups/0/hardware_ids/0", 7, "group 1 has an invalid hardware id '7'"},
      {"empty tag", "/groups/1/tags/0", "", "group 2 has an invalid tag"},
      {"zero rate", "/rate/per_minute", 0, "rate.per_minute must be positive"},
      {"negative rate", "/rate/per_minute", -5, "rate.per_minute must be positive"},
      {"rate not a number", "/rate/per_minute", "fast", "rate.per_minute must be a number"},
      {"fractional rate", "/rate/per_minute", 1.5, "rate.per_minute must be an integer"},
      {"zero ramp start", "/rate/ramp/start_per_minute", 0, "rate.ramp.start_per_minute must be positive"},
      {"ramp factor below 1", "/rate/ramp/factor", 0.5, "rate.ramp.factor must be at least 1"},
      {"zero every_successes", "/rate/ramp/every_successes", 0, "rate.ramp.every_successes must be positive"},
      {"zero batch size", "/batch_size", 0, "batch_size must be positive"},
      {"threshold over 100", "/success/threshold_percent", 100.5,
       "success.threshold_percent must be between 0 and 100"},
      {"negative threshold", "/success/threshold_percent", -1,
       "success.threshold_percent must be between 0 and 100"},
      {"abort needs failure_percent", "/abort/failure_percent", nullptr, "abort.failure_percent is required"},
      {"abort percent over 100", "/abort/failure_percent", 101,
       "abort.failure_percent must be between 0 and 100"},
      {"abort min_finished zero", "/abort/min_finished", 0, "abort.min_finished must be at least 1"},
      {"abort unknown action", "/abort/action", "cancel", "abort.action must be pause or abort"},
      {"zero reply timeout", "/reply_timeout_s", 0, "reply_timeout_s must be positive"},
      {"negative retries", "/retries/max", -1, "retries.max must not be negative"},
      {"negative backoff", "/retries/backoff_s", -1, "retries.backoff_s must not be negative"},
      {"window start not a time", "/window/not_before", "tomorrow",
       "window.not_before is not an RFC 3339 time"},
      {"window end not a time", "/window/not_after", "2026-13-01T00:00:00Z",
       "window.not_after is not an RFC 3339 time"},
      {"window start after end", "/window/not_before", "2026-12-09T00:00:00Z",
       "window.not_before must be before window.not_after"},
      {"window start equal to end", "/window/not_before", "2026-12-08T00:00:00Z",
       "window.not_before must be before window.not_after"},
      {"negative pause between groups", "/between_groups/pause_minutes", -1,
       "between_groups.pause_minutes must not be negative"},
      {"condition group above the last", "/conditions/0/group", 4,
       "condition 1 names group 4 but there are 3 groups"},
      {"condition group 0 (groups are 1-based)", "/conditions/0/group", 0,
       "condition 1 names group 0 but there are 3 groups"},
      {"condition unknown op", "/conditions/0/op", "above", "condition 1 has unknown op 'above'"},
      {"condition unknown stage", "/conditions/0/stage", "inside", "condition 1 has unknown stage 'inside'"},
      {"condition needs a property", "/conditions/0/property", "", "condition 1 needs a property"},
      {"condition needs a value", "/conditions/0/value", nullptr,
       "condition 1 needs a string or number value"},
      {"conditions must be an array", "/conditions", "x", "conditions must be an array"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    json doc = protocol_example();
    if (std::string(c.pointer).empty()) {
      doc = c.value;
    } else {
      doc[json::json_pointer(c.pointer)] = c.value;
    }
    auto r = parse_campaign_document(doc);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::bad_request);
    CHECK(r.error().message == c.message);
  }
}

TEST_CASE("exec campaigns need a command that devices can split back") {
  struct {
    const char* rule;
    json patch;
    const char* message;  // nullptr: accepted
  } cases[] = {
      {"exec without command", {{"type", "exec"}}, "command is required for type exec"},
      {"exec with a command", {{"type", "exec"}, {"command", "ls"}, {"arguments", {"-l", "/tmp"}}}, nullptr},
      {"command with a space", {{"type", "exec"}, {"command", "ls -l"}}, "command must not contain a space"},
      {"argument with a space",
       {{"type", "exec"}, {"command", "ls"}, {"arguments", {"-l", "a b"}}},
       "argument 2 must not contain a space"},
      {"arguments not strings",
       {{"type", "exec"}, {"command", "ls"}, {"arguments", {1}}},
       "arguments must be an array of strings"},
      // Issue 15: these were accepted, then never published (every execution timed out).
      {"empty argument",
       {{"type", "exec"}, {"command", "ls"}, {"arguments", {"-l", ""}}},
       "argument 2 is empty"},
      {"argument with a tab",
       {{"type", "exec"}, {"command", "ls"}, {"arguments", {"a\tb"}}},
       "argument 1 must not contain a control character"},
      {"argument with a newline",
       {{"type", "exec"}, {"command", "ls"}, {"arguments", {"-l", "x\n"}}},
       "argument 2 must not contain a control character"},
      {"argument with NUL",
       {{"type", "exec"}, {"command", "ls"}, {"arguments", {std::string("a\0b", 3)}}},
       "argument 1 must not contain a control character"},
      {"command with a tab",
       {{"type", "exec"}, {"command", "ls\t"}},
       "command must not contain a control character"},
      {"command with DEL",
       {{"type", "exec"}, {"command", "ls\x7f"}},
       "command must not contain a control character"},
      {"empty command", {{"type", "exec"}, {"command", ""}}, "command is required for type exec"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    json doc = minimal();
    doc.update(c.patch);
    auto r = parse_campaign_document(doc);
    if (c.message == nullptr) {
      REQUIRE(r.ok());
      CHECK(r.value().command == "ls");
      CHECK(r.value().arguments == std::vector<std::string>{"-l", "/tmp"});
    } else {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::bad_request);
      CHECK(r.error().message == c.message);
    }
  }
}

TEST_CASE("a numeric condition value keeps its JSON spelling") {
  json doc = protocol_example();
  doc["conditions"][0]["value"] = 10;
  auto r = parse_campaign_document(doc);
  REQUIRE(r.ok());
  CHECK(r.value().conditions[0].value == "10");
}
