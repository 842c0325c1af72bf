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
