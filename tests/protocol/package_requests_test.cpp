#include "protocol/package_requests.h"

#include <catch2/catch.hpp>
#include <functional>
#include <limits>
#include <optional>
#include <string>

using namespace dispatch::protocol;
using dispatch::core::ErrorCode;
using nlohmann::json;

namespace {

const std::string k_sha(64, 'a');

json internal_package() {
  return json{{"name", "fw"},    {"version", "1.0.0"}, {"type", "internal"},
              {"sha256", k_sha}, {"size", 4},          {"available", true}};
}

json with(json base, const json& patch) {
  base.merge_patch(patch);
  return base;
}

}  // namespace

TEST_CASE("packages/create: valid requests are normalized", "[protocol][package_requests]") {
  auto c = parse_package_create(with(internal_package(), {{"version", "v1.2.3"},
                                                          {"prerequisite_version", "v1.0.0"},
                                                          {"tags", {"b", "a", "b"}},
                                                          {"attributes", {{"k", "v"}}},
                                                          {"request_id", "r-1"}}));
  REQUIRE(c.ok());
  CHECK(c->version == "1.2.3");
  CHECK(c->prerequisite_version == "1.0.0");
  CHECK(c->type == PackageType::internal);
  CHECK(c->size == 4);
  CHECK(c->tags == std::vector<std::string>{"a", "b"});
  CHECK(c->attributes.at("k") == "v");
  CHECK(c->request_id == "r-1");
  CHECK_FALSE(c->prerelease_ok);
  auto e = parse_package_create(json{{"name", "fw"},
                                     {"version", "2.0.0"},
                                     {"type", "external"},
                                     {"url", "https://x.example/a"},
                                     {"available", false}});
  REQUIRE(e.ok());
  CHECK(e->type == PackageType::external);
  CHECK(e->url == "https://x.example/a");
  CHECK_FALSE(e->size);
}

TEST_CASE("packages/create: invalid requests", "[protocol][package_requests]") {
  struct {
    const char* rule;
    json body;
    std::string message;
  } cases[] = {
      {"name is required", with(internal_package(), {{"name", nullptr}}), "missing required field 'name'"},
      {"name is not empty", with(internal_package(), {{"name", ""}}),
       "field 'name' must be 1 to 256 characters"},
      {"name at most 256", with(internal_package(), {{"name", std::string(257, 'n')}}),
       "field 'name' must be 1 to 256 characters"},
      {"version is SemVer", with(internal_package(), {{"version", "one"}}), "field 'version': "},
      {"prerequisite is SemVer", with(internal_package(), {{"prerequisite_version", "x"}}),
       "field 'prerequisite_version': "},
      {"type is one of two", with(internal_package(), {{"type", "zip"}}),
       "field 'type' must be one of internal, external"},
      {"size is not negative", with(internal_package(), {{"size", -1}}), "field 'size' must be between"},
      {"tags are ids", with(internal_package(), {{"tags", {"a b"}}}), "invalid tag in 'tags'"},
      {"available is required", with(internal_package(), {{"available", nullptr}}),
       "missing required field 'available'"},
      {"attributes are strings", with(internal_package(), {{"attributes", {{"k", 1}}}}),
       "field 'attributes' must be an object of strings"},
      {"request_id is an id", with(internal_package(), {{"request_id", "a/b"}}), "invalid request_id"},
      {"sha256 is lowercase hex", with(internal_package(), {{"sha256", std::string(64, 'A')}}),
       "field 'sha256' must be 64 lowercase hex characters"},
      {"internal takes no url", with(internal_package(), {{"url", "https://x.example/a"}}),
       "an internal package takes no 'url'"},
      {"internal needs sha256", with(internal_package(), {{"sha256", nullptr}}),
       "an internal package needs 'sha256' to check its upload"},
      {"internal needs size", with(internal_package(), {{"size", nullptr}}),
       "an internal package needs 'size' to check its upload"},
      {"external needs a url",
       with(internal_package(), {{"type", "external"}, {"sha256", nullptr}, {"size", nullptr}}),
       "an external package needs an http:// or https:// 'url'"},
      {"external url is http(s)", with(internal_package(), {{"type", "external"}, {"url", "ftp://x"}}),
       "an external package needs an http:// or https:// 'url'"},
      {"external url has no spaces", with(internal_package(), {{"type", "external"}, {"url", "https://x y"}}),
       "an external package needs an http:// or https:// 'url'"},
      {"external url is not only the scheme",
       with(internal_package(), {{"type", "external"}, {"url", "https://"}}),
       "an external package needs an http:// or https:// 'url'"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      auto r = parse_package_create(c.body);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::bad_request);
      CHECK(r.error().message.rfind(c.message, 0) == 0);
    }
  }
}

TEST_CASE("packages/list, update, get: valid requests", "[protocol][package_requests]") {
  auto l = parse_package_list(json{{"tag", "eu"}, {"limit", 5}, {"after", "01A"}}, 1000);
  REQUIRE(l.ok());
  CHECK(l->tag == "eu");
  CHECK(l->limit == 5);
  CHECK(l->after == "01A");
  CHECK(parse_package_list(json::object(), 1000)->limit == 100);
  auto u = parse_package_update(json{{"id", "01A"}, {"tags", {"z", "a"}}});
  REQUIRE(u.ok());
  CHECK_FALSE(u->available);
  CHECK(u->tags == std::vector<std::string>{"a", "z"});
  CHECK(parse_package_update(json{{"id", "01A"}, {"available", false}})->available == false);
  CHECK(*parse_package_id(json{{"id", "01A"}}) == "01A");
  auto h = parse_upload_header(json{{"id", "01A"}, {"offset", 7}, {"last", true}});
  REQUIRE(h.ok());
  CHECK(h->offset == 7);
  CHECK(h->last);
  CHECK_FALSE(parse_upload_header(json{{"id", "01A"}, {"offset", 0}})->last);
  auto d = parse_download_request(json{{"download_token", "t"}, {"offset", 0}, {"length", 10}}, 10);
  REQUIRE(d.ok());
  CHECK(d->length == 10);
}

TEST_CASE("packages/list, update, get, upload header, download request: invalid requests",
          "[protocol][package_requests]") {
  using Parse = std::function<dispatch::core::Status(const json&)>;
  auto status = [](auto r) -> dispatch::core::Status {
    if (!r) return r.error();
    return {};
  };
  const Parse list = [&](const json& b) { return status(parse_package_list(b, 1000)); };
  const Parse update = [&](const json& b) { return status(parse_package_update(b)); };
  const Parse get = [&](const json& b) { return status(parse_package_id(b)); };
  const Parse upload = [&](const json& b) { return status(parse_upload_header(b)); };
  const Parse download = [&](const json& b) { return status(parse_download_request(b, 100)); };
  struct {
    const char* rule;
    Parse parse;
    json body;
    std::string message;
  } cases[] = {
      {"list limit at least 1", list, json{{"limit", 0}}, "field 'limit' must be between 1 and 1000"},
      {"list limit at most the page", list, json{{"limit", 1001}},
       "field 'limit' must be between 1 and 1000"},
      {"list tag is an id", list, json{{"tag", "a/b"}}, "invalid tag"},
      {"list after is an id", list, json{{"after", "#"}}, "invalid after"},
      {"list available is a boolean", list, json{{"available", "yes"}},
       "field 'available' must be a boolean"},
      {"update needs an id", update, json{{"available", true}}, "missing required field 'id'"},
      {"update needs something to change", update, json{{"id", "01A"}},
       "nothing to update: give 'available' or 'tags'"},
      {"update tags are ids", update, json{{"id", "01A"}, {"tags", {"a b"}}}, "invalid tag in 'tags'"},
      {"get id is an id", get, json{{"id", "a/b"}}, "invalid id"},
      {"upload offset is not negative", upload, json{{"id", "01A"}, {"offset", -1}},
       "field 'offset' must be between"},
      {"upload offset is an integer", upload, json{{"id", "01A"}, {"offset", 1.5}},
       "field 'offset' must be an integer"},
      {"upload needs an offset", upload, json{{"id", "01A"}}, "missing required field 'offset'"},
      {"upload last is a boolean", upload, json{{"id", "01A"}, {"offset", 0}, {"last", 1}},
       "field 'last' must be a boolean"},
      {"download needs a token", download, json{{"offset", 0}, {"length", 1}},
       "missing required field 'download_token'"},
      {"download offset is not negative", download,
       json{{"download_token", "t"}, {"offset", -1}, {"length", 1}}, "field 'offset' must be between"},
      {"download length at least 1", download, json{{"download_token", "t"}, {"offset", 0}, {"length", 0}},
       "field 'length' must be between 1 and 100"},
      {"download length at most the chunk", download,
       json{{"download_token", "t"}, {"offset", 0}, {"length", 101}},
       "field 'length' must be between 1 and 100"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      auto r = c.parse(c.body);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::bad_request);
      CHECK(r.error().message.rfind(c.message, 0) == 0);
    }
  }
}

TEST_CASE("nonces: 16 to 64 characters of the Base64 alphabets", "[protocol][package_requests]") {
  struct {
    const char* rule;
    std::string nonce;
    bool valid;
  } cases[] = {
      {"16 URL-safe characters", "abcdefghijklmn_-", true},
      {"standard Base64 with padding", "q83vEjRWeJq8/+7/AAEC==", true},
      {"64 characters", std::string(64, 'A'), true},
      {"15 characters", std::string(15, 'A'), false},
      {"65 characters", std::string(65, 'A'), false},
      {"a space", "abcdefghijklmno p", false},
      {"a dot", "abcdefghijklmno.p", false},
      {"a newline (it separates the signed fields)", "abcdefghijklmno\np", false},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(valid_nonce(c.nonce) == c.valid);
  }
}

TEST_CASE("package query: token rules per mode and time window", "[protocol][package_requests]") {
  const dispatch::core::TimeMs now = 1'800'000'000'000;
  const std::string ts_now = "2027-01-15T08:00:00Z";  // now
  QueryRules fresh;
  QueryRules any{true, false, 300'000};
  QueryRules off{false, false, 300'000};
  const json ok_fresh{{"version", "1.0.0"}, {"token", "sig"}, {"ts", ts_now}, {"nonce", "abcdefghijklmnop"}};
  struct {
    const char* rule;
    json body;
    QueryRules rules;
    std::optional<ErrorCode> code;  // nullopt: accepted
    std::string message;
  } cases[] = {
      {"fresh query accepted", ok_fresh, fresh, std::nullopt, ""},
      {"off reads no token", json{{"version", "1.0.0"}}, off, std::nullopt, ""},
      {"any accepts a static token", json{{"token", "sig"}}, any, std::nullopt, ""},
      {"any with a nonce is fresh: needs ts", json{{"token", "sig"}, {"nonce", "abcdefghijklmnop"}}, any,
       ErrorCode::bad_request, "missing required field 'ts'"},
      {"fresh refuses a static token", json{{"token", "sig"}}, fresh, ErrorCode::bad_request,
       "missing required field 'ts'"},
      {"fresh needs a nonce", with(ok_fresh, {{"nonce", nullptr}}), fresh, ErrorCode::bad_request,
       "missing required field 'nonce'"},
      {"token is required", with(ok_fresh, {{"token", nullptr}}), fresh, ErrorCode::bad_request,
       "missing required field 'token'"},
      {"version is SemVer", with(ok_fresh, {{"version", "x"}}), fresh, ErrorCode::bad_request,
       "field 'version': "},
      {"package_id is an id", with(ok_fresh, {{"package_id", "a/b"}}), fresh, ErrorCode::bad_request,
       "invalid package_id"},
      {"nonce alphabet", with(ok_fresh, {{"nonce", "abcdefghijklmno!"}}), fresh, ErrorCode::bad_request,
       "field 'nonce' must be 16 to 64 characters of [A-Za-z0-9+/=_-]"},
      {"ts is RFC 3339", with(ok_fresh, {{"ts", "yesterday"}}), fresh, ErrorCode::bad_request,
       "field 'ts' must be an RFC 3339 time"},
      {"ts 300 s behind is accepted", with(ok_fresh, {{"ts", "2027-01-15T07:55:00Z"}}), fresh, std::nullopt,
       ""},
      {"ts 301 s behind is refused", with(ok_fresh, {{"ts", "2027-01-15T07:54:59Z"}}), fresh,
       ErrorCode::unauthorized, "token time is more than 300 s away from the service clock"},
      {"ts 301 s ahead is refused", with(ok_fresh, {{"ts", "2027-01-15T08:05:01Z"}}), fresh,
       ErrorCode::unauthorized, "token time is more than 300 s away from the service clock"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      auto q = parse_package_query(c.body, c.rules, now);
      if (!c.code) {
        CHECK(q.ok());
      } else {
        REQUIRE_FALSE(q.ok());
        CHECK(q.error().code == *c.code);
        CHECK(q.error().message.rfind(c.message, 0) == 0);
      }
    }
  }
}
