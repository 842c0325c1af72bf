#include "service/console.h"

#include <catch2/catch.hpp>

using namespace dispatch;
using namespace dispatch::service;
using nlohmann::json;

namespace {

http::HttpRequest req(std::string method, std::string path, std::string auth = {}) {
  http::HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.authorization = std::move(auth);
  return r;
}

std::string header(const http::HttpReply& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return {};
}

// A backend that records the calls and answers a fixed fleet of three devices on two pages.
struct Fake {
  std::vector<std::string> calls;
  ConsoleBackend backend(std::string token) {
    ConsoleBackend b;
    b.token = std::move(token);
    b.call = [this](const std::string& res, const std::string& act, const json& body) -> core::Result<json> {
      calls.push_back(res + "/" + act + " " + body.dump());
      if (res == "devices") {
        if (!body.contains("after"))
          return json{{"devices",
                       {{{"hardware_id", "d1"},
                         {"tags", {"eu"}},
                         {"reported_version", "1.0.0"},
                         {"last_seen", nullptr}},
                        {{"hardware_id", "d2"},
                         {"tags", {"eu", "x"}},
                         {"reported_version", "2.0.0"},
                         {"last_seen", nullptr}}}},
                      {"next_after", "d2"}};
        return json{{"devices", {{{"hardware_id", "d3"}, {"tags", {"eu"}}, {"reported_version", nullptr}}}}};
      }
      if (res == "campaigns" && body.value("id", "") == "missing")
        return core::make_error(core::ErrorCode::not_found, "no campaign missing");
      if (res == "commands" && act == "get")
        return json{{"command", {{"id", "c"}}},
                    {"devices", {{{"hardware_id", "a"}}, {{"hardware_id", "b"}}, {{"hardware_id", "c"}}}}};
      return json{{"state", "paused_by_user"}};
    };
    return b;
  }
};

}  // namespace

TEST_CASE("console: static files carry their content type and the strict CSP") {
  Fake f;
  auto b = f.backend("");
  auto index = console_answer(req("GET", "/console/"), b);
  CHECK(index.status == 200);
  CHECK(index.content_type == "text/html; charset=utf-8");
  CHECK(index.body.find("<script type=\"module\" src=\"app.js\">") != std::string::npos);
  CHECK(header(index, "Content-Security-Policy") == "default-src 'self'");
  auto js = console_answer(req("GET", "/console/app.js"), b);
  CHECK(js.status == 200);
  CHECK(js.content_type == "text/javascript; charset=utf-8");
  CHECK(console_answer(req("GET", "/console/style.css"), b).content_type == "text/css; charset=utf-8");
  CHECK(console_answer(req("GET", "/console/nope.js"), b).status == 404);
  CHECK(console_answer(req("GET", "/console"), b).status == 301);
  CHECK(console_answer(req("POST", "/console/app.js"), b).status == 405);
  CHECK(is_console_path("/console"));
  CHECK(is_console_path("/console/api/fleet"));
  CHECK_FALSE(is_console_path("/consoles"));
  CHECK_FALSE(is_console_path("/metrics"));
}

TEST_CASE("console: campaign actions need the bearer token, none configured is read-only") {
  Fake f;
  auto b = f.backend("s3cret");
  CHECK(console_answer(req("POST", "/console/api/campaigns/k/pause"), b).status == 401);
  CHECK(console_answer(req("POST", "/console/api/campaigns/k/pause", "Bearer wrong"), b).status == 401);
  CHECK(console_answer(req("POST", "/console/api/campaigns/k/pause", "s3cret"), b).status == 401);
  CHECK(f.calls.empty());
  CHECK(console_answer(req("GET", "/console/api/campaigns/k/pause", "Bearer s3cret"), b).status == 405);
  auto ok = console_answer(req("POST", "/console/api/campaigns/k/terminate", "Bearer s3cret"), b);
  CHECK(ok.status == 200);
  REQUIRE(f.calls.size() == 1);
  CHECK(f.calls[0] == "campaigns/terminate {\"id\":\"k\"}");

  Fake ro;
  auto none = ro.backend("");
  CHECK(console_answer(req("POST", "/console/api/campaigns/k/resume", "Bearer "), none).status == 403);
  CHECK(ro.calls.empty());
}

TEST_CASE("console: fleet pages through devices/list, filters by version, counts versions per tag") {
  Fake f;
  auto b = f.backend("");
  auto all = console_answer(req("GET", "/console/api/fleet"), b);
  REQUIRE(all.status == 200);
  auto j = json::parse(all.body);
  CHECK(j["count"] == 3);
  CHECK(j["versions"]["eu"]["1.0.0"] == 1);
  CHECK(j["versions"]["eu"]["2.0.0"] == 1);
  CHECK(j["versions"]["eu"]["unknown"] == 1);
  CHECK(j["versions"]["x"]["2.0.0"] == 1);
  CHECK(f.calls.size() == 2);
  auto q = req("GET", "/console/api/fleet");
  q.query.emplace("version", "2.0.0");
  auto v = json::parse(console_answer(q, b).body);
  CHECK(v["count"] == 1);
  CHECK(v["devices"][0]["hardware_id"] == "d2");
}

TEST_CASE("console: errors are JSON with the status of their code, deliveries are paged") {
  Fake f;
  auto b = f.backend("");
  auto missing = console_answer(req("GET", "/console/api/campaigns/missing"), b);
  CHECK(missing.status == 404);
  CHECK(json::parse(missing.body)["error"] == "not_found");
  CHECK(console_answer(req("GET", "/console/api/nothing"), b).status == 404);
  CHECK(console_answer(req("GET", "/console/api/campaigns//x"), b).status == 404);
  auto q = req("GET", "/console/api/commands/c");
  q.query.emplace("offset", "1");
  q.query.emplace("limit", "1");
  auto page = json::parse(console_answer(q, b).body);
  CHECK(page["devices_total"] == 3);
  REQUIRE(page["devices"].size() == 1);
  CHECK(page["devices"][0]["hardware_id"] == "b");
  auto bad = req("GET", "/console/api/commands/c");
  bad.query.emplace("offset", "-1");
  CHECK(console_answer(bad, b).status == 400);
}

namespace {

// Takes what the listener's worker would write next from a stream (without waiting).
std::optional<std::string> next_chunk(http::EventStream& s) {
  std::atomic<bool> stop{false};
  std::string out;
  if (s.take(out, std::chrono::milliseconds(0), stop) != http::EventStream::Take::chunk) return std::nullopt;
  return out;
}

}  // namespace

TEST_CASE("console: a campaign event stream starts with the document, then at most one update a second") {
  int progress = 10;
  std::vector<std::string> calls;
  ConsoleBackend b;
  b.call = [&](const std::string& res, const std::string& act, const json& body) -> core::Result<json> {
    calls.push_back(res + "/" + act + " " + body.dump());
    if (body.value("id", "") == "missing")
      return core::make_error(core::ErrorCode::not_found, "no campaign missing");
    return json{{"id", body.value("id", "")}, {"stats", {{"progress_percent", progress}}}};
  };
  ConsoleStreams streams(2);
  b.streams = &streams;
  const auto t0 = ConsoleStreams::Clock::now();

  auto r = streams.open("k", b, t0);
  REQUIRE(r.status == 200);
  CHECK(r.content_type == "text/event-stream");
  CHECK(header(r, "Content-Security-Policy") == "default-src 'self'");
  REQUIRE(r.stream);
  auto first = next_chunk(*r.stream);
  REQUIRE(first);
  CHECK(*first ==
        "retry: 3000\nevent: campaign\ndata: {\"id\":\"k\",\"stats\":{\"progress_percent\":10}}\n\n");
  CHECK(calls == std::vector<std::string>{"campaigns/get {\"id\":\"k\"}"});

  // Unchanged: nothing is offered. Changed but within the second: nothing either.
  streams.tick(b, t0 + std::chrono::milliseconds(1500));
  CHECK_FALSE(next_chunk(*r.stream));
  progress = 50;
  streams.tick(b, t0 + std::chrono::milliseconds(1600));
  auto second = next_chunk(*r.stream);
  REQUIRE(second);
  CHECK(second->find("\"progress_percent\":50") != std::string::npos);
  progress = 60;
  streams.tick(b, t0 + std::chrono::milliseconds(2000));  // 0.4 s after the last update
  CHECK_FALSE(next_chunk(*r.stream));
  streams.tick(b, t0 + std::chrono::milliseconds(2600));
  CHECK(next_chunk(*r.stream));

  // Two updates the client did not take yet: only the newest waits (one chunk per stream, never a queue).
  progress = 70;
  streams.tick(b, t0 + std::chrono::milliseconds(3600));
  progress = 80;
  streams.tick(b, t0 + std::chrono::milliseconds(4600));
  auto newest = next_chunk(*r.stream);
  REQUIRE(newest);
  CHECK(newest->find("\"progress_percent\":80") != std::string::npos);
  CHECK_FALSE(next_chunk(*r.stream));

  // Through console_answer, and errors.
  auto via = console_answer(req("GET", "/console/api/campaigns/k/events"), b);
  CHECK(via.status == 200);
  CHECK(streams.open_count() == 2);
  CHECK(console_answer(req("POST", "/console/api/campaigns/k/events"), b).status == 405);
  ConsoleStreams roomy(5);
  b.streams = &roomy;
  auto missing = console_answer(req("GET", "/console/api/campaigns/missing/events"), b);
  CHECK(missing.status == 404);
  CHECK_FALSE(missing.stream);
  CHECK(roomy.open_count() == 0);
  ConsoleBackend none = b;
  none.streams = nullptr;
  CHECK(console_answer(req("GET", "/console/api/campaigns/k/events"), none).status == 503);
}

TEST_CASE("console: past http.console_max_streams a stream is refused 503, a finished one frees its place") {
  ConsoleBackend b;
  b.call = [](const std::string&, const std::string&, const json&) -> core::Result<json> {
    return json{{"s", 1}};
  };
  ConsoleStreams streams(1);
  auto one = streams.open("a", b, ConsoleStreams::Clock::now());
  REQUIRE(one.stream);
  auto refused = streams.open("b", b, ConsoleStreams::Clock::now());
  CHECK(refused.status == 503);
  CHECK(header(refused, "Retry-After") == "5");
  CHECK(json::parse(refused.body)["message"].get<std::string>().find("http.console_max_streams") !=
        std::string::npos);
  one.stream->finish();  // what the listener does when the client went away
  CHECK(streams.open("b", b, ConsoleStreams::Clock::now()).status == 200);
  CHECK(streams.open_count() == 1);
}

TEST_CASE("console: a campaign that is gone ends its stream") {
  bool gone = false;
  ConsoleBackend b;
  b.call = [&](const std::string&, const std::string&, const json&) -> core::Result<json> {
    if (gone) return core::make_error(core::ErrorCode::not_found, "no campaign k");
    return json{{"s", 1}};
  };
  ConsoleStreams streams(1);
  auto t0 = ConsoleStreams::Clock::now();
  auto r = streams.open("k", b, t0);
  REQUIRE(r.stream);
  (void)next_chunk(*r.stream);
  gone = true;
  streams.tick(b, t0 + std::chrono::seconds(2));
  auto last = next_chunk(*r.stream);
  REQUIRE(last);
  CHECK(last->starts_with("event: gone\n"));
  std::atomic<bool> stop{false};
  std::string out;
  CHECK(r.stream->take(out, std::chrono::milliseconds(0), stop) == http::EventStream::Take::end);
}

TEST_CASE("console: package create and upload need the token and go through packages/upload") {
  std::vector<std::string> uploads;
  Fake f;
  auto b = f.backend("s3cret");
  b.upload = [&](const json& header, std::string_view bytes) -> core::Result<json> {
    uploads.push_back(header.dump() + " " + std::string(bytes));
    return json{{"id", header["id"]},
                {"received", header["offset"].get<long>() + static_cast<long>(bytes.size())}};
  };
  auto up = req("POST", "/console/api/packages/p1/upload");
  up.query.emplace("offset", "4");
  up.query.emplace("last", "1");
  up.body = "abcd";
  CHECK(console_answer(up, b).status == 401);
  CHECK(uploads.empty());
  up.authorization = "Bearer s3cret";
  auto ok = console_answer(up, b);
  CHECK(ok.status == 200);
  REQUIRE(uploads.size() == 1);
  CHECK(uploads[0] == "{\"id\":\"p1\",\"last\":true,\"length\":4,\"offset\":4} abcd");
  auto bad = req("POST", "/console/api/packages/p1/upload", "Bearer s3cret");
  bad.query.emplace("offset", "x");
  CHECK(console_answer(bad, b).status == 400);
  auto no_offset = req("POST", "/console/api/packages/p1/upload", "Bearer s3cret");
  CHECK(console_answer(no_offset, b).status == 400);
  CHECK(uploads.size() == 1);

  auto create = req("POST", "/console/api/packages", "Bearer s3cret");
  create.body = "not json";
  CHECK(console_answer(create, b).status == 400);
  create.body = R"({"name":"fw","version":"1.0.0","type":"internal","tags":[],"available":true})";
  CHECK(console_answer(create, b).status == 200);
  CHECK(f.calls.back().starts_with("packages/create "));
  CHECK(console_answer(req("POST", "/console/api/packages"), b).status == 401);

  Fake ro;
  auto none = ro.backend("");
  CHECK(console_answer(req("POST", "/console/api/packages", "Bearer x"), none).status == 403);
}
