// The router on its own: one table, one guard, one try/catch, one error→wire mapping.
#include "service/router.h"

#include <catch2/catch.hpp>
#include <stdexcept>

#include "storage/database.h"

using namespace dispatch;
using json = nlohmann::json;
using core::ErrorCode;
using core::make_error;
using protocol::TopicKind;

namespace {

struct RouterFixture {
  protocol::Topics topics;
  service::RecordingPublisher pub;
  service::Router router{topics, pub, service::RouterLimits{1024, 8, 1}};

  void send(const std::string& topic, const std::string& payload, const std::string& response_topic = "",
            const char* correlation_data = nullptr) {
    service::InboundMessage m;
    m.topic = topic;
    m.payload = payload;
    m.response_topic = response_topic;
    if (correlation_data) {
      m.correlation_data = correlation_data;
      m.has_correlation_data = true;
    }
    router.dispatch(m);
  }
};

}  // namespace

TEST_CASE("a throwing device handler is caught: the service lives, the batch commits", "[service][router]") {
  RouterFixture f;
  int after = 0;
  f.router.add_device(TopicKind::command_reply, 1024, [](const std::string&, const service::InboundMessage&) {
    throw std::runtime_error("bug");
  });
  f.router.add_device(TopicKind::metadata, 1024,
                      [&](const std::string&, const service::InboundMessage&) { ++after; });
  f.router.add_device_request(TopicKind::command_pending, TopicKind::command_pending_reply, 1024,
                              [](const std::string&, const json&) -> core::Result<json> { throw 42; });
  auto db = storage::Database::open(":memory:");
  REQUIRE(db.ok());
  // As in App::handle_batch: a throw escaping into the batch transaction used to end in std::abort().
  auto st = (*db)->transaction([&]() -> core::Status {
    f.send("esthesis/command/reply/dev-1", "01ABC s ok");
    f.send("esthesis/command/pending/dev-1", R"({"correlation_id":"p-1"})", "", "cd");
    f.send("esthesis/metadata/dev-1", "health cpu=1");
    return {};
  });
  CHECK(st.ok());
  CHECK(after == 1);
  CHECK(f.router.counters().handler_failures == 2);
  // The request that expected an answer got one: internal, generic, correlation echoed both ways.
  REQUIRE(f.pub.sent.size() == 1);
  CHECK(f.pub.sent[0].topic == "esthesis/command/pending-reply/dev-1");
  CHECK(f.pub.sent[0].correlation_data == "cd");
  auto a = json::parse(f.pub.sent[0].payload);
  CHECK(a["error"] == json{{"code", "internal"}, {"message", "internal error"}});
  CHECK(a["correlation_id"] == "p-1");
}

TEST_CASE("a throwing API handler is answered internal", "[service][router]") {
  RouterFixture f;
  f.router.add_api("devices", "get", [](const json&) -> core::Result<json> { throw std::out_of_range("x"); });
  f.send("esthesis/api/v1/devices/get", R"({"correlation_id":"c-1"})", "reply/x", "cd");
  REQUIRE(f.pub.sent.size() == 1);
  CHECK(json::parse(f.pub.sent[0].payload)["error"]["code"] == "internal");
  CHECK(f.router.counters().handler_failures == 1);
}

TEST_CASE("unavailable and internal errors go out without their detail", "[service][router]") {
  struct {
    const char* rule;
    core::Error error;
    json wire;
  } cases[] = {
      {"internal loses the SQLite text",
       make_error(ErrorCode::internal, "SQLite: no such table: deliveries"),
       {{"code", "internal"}, {"message", "internal error"}}},
      {"unavailable loses the path",
       make_error(ErrorCode::unavailable, "disk I/O error in /var/lib/dispatch/db"),
       {{"code", "unavailable"}, {"message", "service temporarily unavailable; retry later"}}},
      {"a client error keeps its message",
       make_error(ErrorCode::not_found, "no package 'p'"),
       {{"code", "not_found"}, {"message", "no package 'p'"}}},
      {"conflict keeps its message",
       make_error(ErrorCode::conflict, "already running"),
       {{"code", "conflict"}, {"message", "already running"}}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    RouterFixture f;
    f.router.add_api("devices", "get", [&](const json&) -> core::Result<json> { return c.error; });
    f.send("esthesis/api/v1/devices/get", "{}", "reply/x");
    REQUIRE(f.pub.sent.size() == 1);
    CHECK(json::parse(f.pub.sent[0].payload)["error"] == c.wire);
  }
}

TEST_CASE("the reply topic: Response Topic, else a usable reply_to, never a reserved one",
          "[service][router]") {
  struct {
    const char* rule;
    std::string response_topic;
    std::string payload;
    std::string answered_on;  // empty: not answered
  } cases[] = {
      {"MQTT 5 Response Topic", "reply/a", "{}", "reply/a"},
      {"Response Topic wins over reply_to", "reply/a", R"({"reply_to":"reply/b"})", "reply/a"},
      {"MQTT 3.1.1 reply_to", "", R"({"reply_to":"reply/b"})", "reply/b"},
      {"a malformed request names no reply_to", "", R"({"reply_to":"reply/b")", ""},
      {"no answer topic", "", "{}", ""},
      {"wildcard reply_to", "", R"({"reply_to":"reply/#"})", ""},
      {"$SYS reply_to", "", R"({"reply_to":"$SYS/x"})", ""},
      {"a device's command topic", "esthesis/command/request/dev-1", "{}", ""},
      {"the API itself", "", R"({"reply_to":"esthesis/api/v1/devices/list"})", ""},
      {"an event topic", "esthesis/events/v1/commands/x", "{}", ""},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    RouterFixture f;
    f.router.add_api("devices", "list", [](const json&) -> core::Result<json> {
      return json{{"devices", json::array()}};
    });
    f.send("esthesis/api/v1/devices/list", c.payload, c.response_topic);
    if (c.answered_on.empty()) {
      CHECK(f.pub.sent.empty());
      CHECK(f.router.counters().unanswerable_requests == 1);
    } else {
      REQUIRE(f.pub.sent.size() == 1);
      CHECK(f.pub.sent[0].topic == c.answered_on);
    }
  }
}

TEST_CASE("size guard, parse errors and unknown routes are answered by rule", "[service][router]") {
  struct {
    const char* rule;
    std::string topic;
    std::string payload;
    const char* code;
  } cases[] = {
      {"oversize before parsing", "esthesis/api/v1/devices/list", std::string(2000, '{'), "too_large"},
      {"malformed JSON", "esthesis/api/v1/devices/list", "{", "bad_request"},
      {"not an object", "esthesis/api/v1/devices/list", "[]", "bad_request"},
      {"too deep", "esthesis/api/v1/devices/list", R"({"a":[[[[[[[[[1]]]]]]]]]})", "bad_request"},
      {"unknown action", "esthesis/api/v1/devices/explode", "{}", "not_found"},
      {"unknown resource", "esthesis/api/v1/robots/list", "{}", "not_found"},
      {"oversize upload frame", "esthesis/api/v1/packages/upload", std::string(200, 'x'), "too_large"},
      {"malformed upload frame", "esthesis/api/v1/packages/upload", "no header", "bad_request"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    RouterFixture f;
    f.router.add_api("devices", "list", [](const json&) -> core::Result<json> { return json::object(); });
    f.router.add_api_frame(
        "packages", "upload", 100,
        [](const json&, std::string_view) -> core::Result<json> { return json::object(); });
    f.send(c.topic, c.payload, "reply/x", "cd");
    REQUIRE(f.pub.sent.size() == 1);
    CHECK(f.pub.sent[0].correlation_data == "cd");
    CHECK(json::parse(f.pub.sent[0].payload)["error"]["code"] == c.code);
  }
}

TEST_CASE("device routes: invalid ids dropped, oversize refused before parsing, hook before handler",
          "[service][router]") {
  RouterFixture f;
  std::vector<std::string> calls;
  f.router.set_device_hook([&](TopicKind, const std::string& hw) { calls.push_back("hook " + hw); });
  f.router.add_device(TopicKind::ping, 10, [&](const std::string& hw, const service::InboundMessage&) {
    calls.push_back("ping " + hw);
  });
  f.router.add_device(
      TopicKind::provisioning_request, 10, [&](const std::string&, const service::InboundMessage&) {},
      TopicKind::provisioning_reply);
  f.send("esthesis/ping/dev-1", "");
  f.send("esthesis/ping/a+b", "");
  f.send("esthesis/ping/dev-1", std::string(11, 'x'));
  f.send("esthesis/metadata/dev-1", "x");  // no route
  CHECK(calls == std::vector<std::string>{"hook dev-1", "ping dev-1"});
  CHECK(f.router.counters().invalid_topics == 2);
  CHECK(f.router.counters().oversize_device_messages == 1);
  CHECK(f.pub.sent.empty());
  // A device waiting for an answer is told why there is none, on its own topic.
  f.send("esthesis/provisioning/request/dev-1", std::string(11, 'x'), "", "cd");
  REQUIRE(f.pub.sent.size() == 1);
  CHECK(f.pub.sent[0].topic == "esthesis/provisioning/reply/dev-1");
  CHECK(f.pub.sent[0].correlation_data == "cd");
  CHECK(json::parse(f.pub.sent[0].payload)["error"]["code"] == "too_large");
}

TEST_CASE("device answers use an allowed Response Topic only", "[service][router]") {
  struct {
    const char* rule;
    std::string response_topic;
    std::string answered_on;
  } cases[] = {
      {"none: the device's own topic", "", "esthesis/command/pending-reply/dev-1"},
      {"below the device's own topic", "esthesis/command/pending-reply/dev-1/x",
       "esthesis/command/pending-reply/dev-1/x"},
      {"another device's topic", "esthesis/command/pending-reply/dev-2",
       "esthesis/command/pending-reply/dev-1"},
      {"anywhere else", "reply/x", "esthesis/command/pending-reply/dev-1"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    RouterFixture f;
    f.router.add_device_request(TopicKind::command_pending, TopicKind::command_pending_reply, 100,
                                [](const std::string&, const json&) -> core::Result<json> {
                                  return json{{"commands", json::array()}};
                                });
    f.send("esthesis/command/pending/dev-1", "{}", c.response_topic);
    REQUIRE(f.pub.sent.size() == 1);
    CHECK(f.pub.sent[0].topic == c.answered_on);
  }
}

TEST_CASE("an oversize handler takes over the oversize message of its route", "[service][router]") {
  RouterFixture f;
  int handled = 0;
  std::size_t seen_limit = 0;
  f.router.add_device(
      TopicKind::provisioning_request, 100,
      [&](const std::string&, const service::InboundMessage&) { ++handled; }, TopicKind::provisioning_reply);
  f.router.set_oversize_handler(
      TopicKind::provisioning_request,
      [&](const std::string& hw, const service::InboundMessage&, std::size_t limit) {
        CHECK(hw == "dev-1");
        seen_limit = limit;
      });
  f.send("esthesis/provisioning/request/dev-1", std::string(101, 'x'));
  CHECK(seen_limit == 100);
  CHECK(handled == 0);
  CHECK(f.pub.sent.empty());  // the oversize handler answers (provisioning: counted, then too_large)
  CHECK(f.router.counters().oversize_device_messages == 1);
  f.send("esthesis/provisioning/request/dev-1", "{}");
  CHECK(handled == 1);
}
