#include "protocol/topics.h"

#include <catch2/catch.hpp>
#include <string>

using namespace dispatch::protocol;
using dispatch::core::ErrorCode;

namespace {

using Builder = dispatch::core::Result<std::string> (Topics::*)(std::string_view) const;

}  // namespace

TEST_CASE("device topics are built from valid hardware ids and parse back", "[protocol][topics]") {
  const Topics topics;
  struct {
    const char* rule;
    Builder build;
    TopicKind kind;
    std::string expected;
  } cases[] = {
      {"command request", &Topics::command_request, TopicKind::command_request,
       "esthesis/command/request/dev-1"},
      {"command reply", &Topics::command_reply, TopicKind::command_reply, "esthesis/command/reply/dev-1"},
      {"command pending", &Topics::command_pending, TopicKind::command_pending,
       "esthesis/command/pending/dev-1"},
      {"command pending reply", &Topics::command_pending_reply, TopicKind::command_pending_reply,
       "esthesis/command/pending-reply/dev-1"},
      {"provisioning request", &Topics::provisioning_request, TopicKind::provisioning_request,
       "esthesis/provisioning/request/dev-1"},
      {"provisioning reply", &Topics::provisioning_reply, TopicKind::provisioning_reply,
       "esthesis/provisioning/reply/dev-1"},
      {"provisioning download", &Topics::provisioning_download, TopicKind::provisioning_download,
       "esthesis/provisioning/download/dev-1"},
      {"provisioning data", &Topics::provisioning_data, TopicKind::provisioning_data,
       "esthesis/provisioning/data/dev-1"},
      {"metadata", &Topics::metadata, TopicKind::metadata, "esthesis/metadata/dev-1"},
      {"ping", &Topics::ping, TopicKind::ping, "esthesis/ping/dev-1"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto built = (topics.*c.build)("dev-1");
    REQUIRE(built.ok());
    CHECK(*built == c.expected);
    auto via_kind = topics.device(c.kind, "dev-1");
    REQUIRE(via_kind.ok());
    CHECK(*via_kind == c.expected);
    auto parsed = topics.parse(*built);
    REQUIRE(parsed.has_value());
    CHECK(parsed->kind == c.kind);
    CHECK(parsed->hardware_id == "dev-1");
    CHECK(parsed->valid);
    CHECK(is_device_topic(c.kind));

    auto refused = (topics.*c.build)("dev/1");
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == ErrorCode::bad_request);
  }
  auto not_device = topics.device(TopicKind::api, "dev-1");
  REQUIRE_FALSE(not_device.ok());
  CHECK(not_device.error().code == ErrorCode::bad_request);
}

TEST_CASE("builders refuse ids that would change a topic's shape", "[protocol][topics]") {
  using namespace std::string_literals;
  const Topics topics;
  const std::string bad_ids[] = {"a/b/c", "dev+", "dev#", "dev\0x"s,
                                 "dev 1", "",     "ab",   std::string(129, 'a')};
  for (const auto& id : bad_ids) {
    INFO(id);
    auto t = topics.command_request(id);
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().code == ErrorCode::bad_request);
  }
}

TEST_CASE("api and event topics", "[protocol][topics]") {
  const Topics topics;
  CHECK(topics.api("commands", "send") == "esthesis/api/v1/commands/send");
  CHECK(topics.command_event("c1") == "esthesis/events/v1/commands/c1");
  CHECK(topics.campaign_event("k1") == "esthesis/events/v1/campaigns/k1");

  auto api = topics.parse("esthesis/api/v1/devices/register");
  REQUIRE(api.has_value());
  CHECK(api->kind == TopicKind::api);
  CHECK(api->resource == "devices");
  CHECK(api->action == "register");

  auto command_event = topics.parse("esthesis/events/v1/commands/c1");
  REQUIRE(command_event.has_value());
  CHECK(command_event->kind == TopicKind::command_event);
  CHECK(command_event->object_id == "c1");
  auto campaign_event = topics.parse("esthesis/events/v1/campaigns/k1");
  REQUIRE(campaign_event.has_value());
  CHECK(campaign_event->kind == TopicKind::campaign_event);
  CHECK(campaign_event->object_id == "k1");
}

TEST_CASE("parse refuses malformed topics", "[protocol][topics]") {
  using namespace std::string_literals;
  const Topics topics;
  struct {
    const char* rule;
    std::string topic;
  } cases[] = {
      {"extra level below a device topic", "esthesis/command/reply/dev-1/x"},
      {"unknown root", "other/command/reply/dev-1"},
      {"root alone", "esthesis/command/reply"},
      {"root as prefix of a level", "esthesis/command/replyx/dev-1"},
      {"api with one level", "esthesis/api/v1/devices"},
      {"api with three levels", "esthesis/api/v1/devices/register/x"},
      {"api empty action", "esthesis/api/v1/devices/"},
      {"api empty resource", "esthesis/api/v1//register"},
      {"api wildcard", "esthesis/api/v1/devices/+"},
      {"api upper case", "esthesis/api/v1/Devices/get"},
      {"event unknown family", "esthesis/events/v1/devices/x"},
      {"event bad id", "esthesis/events/v1/commands/a b"},
      {"empty", ""},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK_FALSE(topics.parse(c.topic).has_value());
  }
}

TEST_CASE("device topics with an invalid id keep their kind but are marked invalid", "[protocol][topics]") {
  using namespace std::string_literals;
  const Topics topics;
  struct {
    const char* rule;
    std::string topic;
    TopicKind kind;
    std::string shown;
  } cases[] = {
      {"space", "esthesis/command/reply/dev 1", TopicKind::command_reply, "dev 1"},
      {"plus", "esthesis/ping/dev+", TopicKind::ping, "dev+"},
      {"hash", "esthesis/metadata/#", TopicKind::metadata, "#"},
      {"NUL", "esthesis/ping/de\0v"s, TopicKind::ping, "de\\x00v"},
      {"empty level", "esthesis/provisioning/request/", TopicKind::provisioning_request, ""},
      {"too short", "esthesis/command/pending/ab", TopicKind::command_pending, "ab"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto parsed = topics.parse(c.topic);
    REQUIRE(parsed.has_value());
    CHECK(parsed->kind == c.kind);
    CHECK_FALSE(parsed->valid);
    CHECK(parsed->hardware_id == c.shown);
  }
}

TEST_CASE("custom roots are used for building, parsing and subscribing", "[protocol][topics]") {
  TopicRoots roots;
  roots.command_request = "fleet/cmd/req";
  roots.command_reply = "fleet/cmd/rep";
  roots.command_pending = "fleet/cmd/pend";
  roots.provisioning_request = "fleet/prov/req";
  roots.provisioning_download = "fleet/prov/dl";
  roots.metadata = "fleet/meta";
  roots.ping = "fleet/ping";
  roots.api = "fleet/api";
  roots.events = "fleet/events";
  REQUIRE(validate(roots).ok());
  const Topics topics(roots);
  CHECK(*topics.command_request("dev-1") == "fleet/cmd/req/dev-1");
  CHECK(topics.api("devices", "get") == "fleet/api/devices/get");
  CHECK(topics.command_event("c") == "fleet/events/commands/c");
  auto parsed = topics.parse("fleet/cmd/rep/dev-9");
  REQUIRE(parsed.has_value());
  CHECK(parsed->kind == TopicKind::command_reply);
  CHECK(parsed->hardware_id == "dev-9");
  CHECK_FALSE(topics.parse("esthesis/command/reply/dev-9").has_value());

  const std::vector<std::string> expected{"fleet/cmd/rep/+", "fleet/cmd/pend/+", "fleet/prov/req/+",
                                          "fleet/prov/dl/+", "fleet/meta/+",     "fleet/ping/+",
                                          "fleet/api/+/+"};
  CHECK(topics.subscriptions() == expected);
}

TEST_CASE("nested custom roots resolve by level count", "[protocol][topics]") {
  TopicRoots roots;
  roots.ping = "x";
  roots.metadata = "x/meta";
  const Topics topics(roots);
  auto meta = topics.parse("x/meta/dev-1");
  REQUIRE(meta.has_value());
  CHECK(meta->kind == TopicKind::metadata);
  auto ping = topics.parse("x/dev-1");
  REQUIRE(ping.has_value());
  CHECK(ping->kind == TopicKind::ping);
}

TEST_CASE("default subscriptions cover every device-inbound root and the api", "[protocol][topics]") {
  const std::vector<std::string> expected{"esthesis/command/reply/+",
                                          "esthesis/command/pending/+",
                                          "esthesis/provisioning/request/+",
                                          "esthesis/provisioning/download/+",
                                          "esthesis/metadata/+",
                                          "esthesis/ping/+",
                                          "esthesis/api/v1/+/+"};
  CHECK(Topics().subscriptions() == expected);
}

TEST_CASE("topic roots are validated", "[protocol][topics]") {
  struct {
    const char* rule;
    std::string root;
    bool ok;
  } cases[] = {
      {"default shape", "a/b", true},  {"empty", "", false},
      {"wildcard plus", "a/+", false}, {"wildcard hash", "a/#", false},
      {"trailing slash", "a/", false}, {"leading slash", "/a", false},
      {"double slash", "a//b", false}, {"system topic", "$SYS/a", false},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    TopicRoots roots;
    roots.ping = c.root;
    auto s = validate(roots);
    CHECK(s.ok() == c.ok);
    if (!c.ok) CHECK(s.error().code == ErrorCode::bad_request);
  }
  TopicRoots duplicate;
  duplicate.ping = duplicate.metadata;
  auto s = validate(duplicate);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message == "topic root 'ping' equals topic root 'metadata'");

  // A device root below the api root: "a/x/<hw>" would also read as the API request a/<x>/<hw>.
  TopicRoots overlapping;
  overlapping.api = "a";
  overlapping.command_reply = "a/x";
  auto o = validate(overlapping);
  REQUIRE_FALSE(o.ok());
  CHECK(o.error().message == "topic root 'api' overlaps topic root 'command_reply'");
  TopicRoots string_prefix;  // "…/pending" and "…/pending-reply" share characters, not a level
  string_prefix.command_pending = "x/pending";
  string_prefix.command_pending_reply = "x/pending-reply";
  CHECK(validate(string_prefix).ok());
}

TEST_CASE("response topics are confined to the device's own reply topic", "[protocol][topics]") {
  using namespace std::string_literals;
  const Topics topics;
  struct {
    const char* rule;
    std::string response_topic;
    TopicKind kind;
    std::string hw;
    bool allowed;
  } cases[] = {
      {"own reply topic", "esthesis/provisioning/reply/dev-1", TopicKind::provisioning_reply, "dev-1", true},
      {"below own reply topic", "esthesis/provisioning/reply/dev-1/q-17", TopicKind::provisioning_reply,
       "dev-1", true},
      {"two levels below", "esthesis/provisioning/reply/dev-1/a/b", TopicKind::provisioning_reply, "dev-1",
       true},
      {"own data topic", "esthesis/provisioning/data/dev-1/x", TopicKind::provisioning_data, "dev-1", true},
      {"another device", "esthesis/provisioning/reply/dev-2", TopicKind::provisioning_reply, "dev-1", false},
      {"prefix trick", "esthesis/provisioning/reply/dev-10", TopicKind::provisioning_reply, "dev-1", false},
      {"prefix trick below", "esthesis/provisioning/reply/dev-10/x", TopicKind::provisioning_reply, "dev-1",
       false},
      {"wildcard plus", "esthesis/provisioning/reply/dev-1/+", TopicKind::provisioning_reply, "dev-1", false},
      {"wildcard hash", "esthesis/provisioning/reply/dev-1/#", TopicKind::provisioning_reply, "dev-1", false},
      {"trailing empty level", "esthesis/provisioning/reply/dev-1/", TopicKind::provisioning_reply, "dev-1",
       false},
      {"empty level below", "esthesis/provisioning/reply/dev-1//x", TopicKind::provisioning_reply, "dev-1",
       false},
      {"NUL", "esthesis/provisioning/reply/dev-1/\0"s, TopicKind::provisioning_reply, "dev-1", false},
      {"other kind's topic", "esthesis/provisioning/data/dev-1", TopicKind::provisioning_reply, "dev-1",
       false},
      {"api topic", "esthesis/api/v1/devices/delete", TopicKind::provisioning_reply, "dev-1", false},
      {"invalid hw", "esthesis/provisioning/reply/d/x", TopicKind::provisioning_reply, "d/x", false},
      {"not a device kind", "esthesis/api/v1/dev-1", TopicKind::api, "dev-1", false},
      {"empty", "", TopicKind::provisioning_reply, "dev-1", false},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(topics.response_topic_allowed(c.response_topic, c.kind, c.hw) == c.allowed);
  }
}

TEST_CASE("client subscription filters come from the same roots", "[protocol][topics]") {
  dispatch::protocol::Topics t;
  CHECK(t.device_filter(dispatch::protocol::TopicKind::command_request) == "esthesis/command/request/+");
  CHECK(t.command_event_filter() == "esthesis/events/v1/commands/+");
}

TEST_CASE("API answers never go to the service's own namespaces", "[protocol][topics]") {
  dispatch::protocol::Topics t;
  struct {
    const char* rule;
    const char* topic;
    bool reserved;
  } cases[] = {
      {"a device's command topic", "esthesis/command/request/dev-1", true},
      {"the api root itself", "esthesis/api/v1", true},
      {"an api action", "esthesis/api/v1/devices/list", true},
      {"an event", "esthesis/events/v1/campaigns/x", true},
      {"a provisioning reply", "esthesis/provisioning/reply/dev-1", true},
      {"a private reply topic", "dispatch/reply/ctl-1", false},
      {"a lookalike prefix", "esthesis/command/requests/x", false},
      {"the parent of roots", "esthesis", false},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(t.in_reserved_namespace(c.topic) == c.reserved);
  }
}
