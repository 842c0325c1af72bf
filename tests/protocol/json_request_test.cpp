#include "protocol/json_request.h"

#include <catch2/catch.hpp>
#include <string>

using namespace dispatch::protocol;
using dispatch::core::ErrorCode;
using nlohmann::json;

TEST_CASE("request payloads within the limits are parsed", "[protocol][json_request]") {
  struct {
    const char* rule;
    std::string payload;
    JsonLimits limits;
  } cases[] = {
      {"object", R"({"a":1})", {}},
      {"empty object", "{}", {}},
      {"unknown fields are kept for the handler to ignore", R"({"x":{"y":[1,2]}})", {}},
      {"exactly at the size limit", R"({"a":"12"})", {10, 32}},
      {"brackets inside strings do not count", R"({"a":")" + std::string(100, '[') + R"("})", {}},
      {"escaped quote inside a string", R"({"a":"\"[[[[","b":1})", {1000, 2}},
      {"depth at the limit", R"({"a":{"b":1}})", {1000, 2}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto parsed = parse_json_object(c.payload, c.limits);
    REQUIRE(parsed.ok());
    CHECK(parsed->is_object());
  }
}

TEST_CASE("request payloads outside the limits or malformed are refused", "[protocol][json_request]") {
  using namespace std::string_literals;
  struct {
    const char* rule;
    std::string payload;
    JsonLimits limits;
    ErrorCode code;
    std::string message;
  } cases[] = {
      {"oversize checked before parsing",
       std::string(20, '{'),
       {10, 32},
       ErrorCode::too_large,
       "request of 20 bytes exceeds the limit of 10 bytes"},
      {"too deep",
       std::string(33, '[') + std::string(33, ']'),
       {},
       ErrorCode::bad_request,
       "JSON nesting deeper than 32"},
      {"deep input far beyond the stack",
       std::string(200000, '['),
       {},
       ErrorCode::bad_request,
       "JSON nesting deeper than 32"},
      {"depth over the limit",
       R"({"a":{"b":[1]}})",
       {1000, 2},
       ErrorCode::bad_request,
       "JSON nesting deeper than 2"},
      {"array is not an object", "[1,2]", {}, ErrorCode::bad_request, "request must be a JSON object"},
      {"string is not an object", R"("x")", {}, ErrorCode::bad_request, "request must be a JSON object"},
      {"null is not an object", "null", {}, ErrorCode::bad_request, "request must be a JSON object"},
      {"garbage", "{nope", {}, ErrorCode::bad_request, "malformed JSON: syntax error at byte 3"},
      {"empty payload", "", {}, ErrorCode::bad_request, "malformed JSON: syntax error at byte 1"},
      {"trailing garbage", "{} x", {}, ErrorCode::bad_request, "malformed JSON: syntax error at byte 4"},
      {"invalid UTF-8",
       "{\"a\":\"\xff\"}",
       {},
       ErrorCode::bad_request,
       "malformed JSON: invalid UTF-8 at byte 7"},
      {"NUL byte", "{\"a\":1}\0"s, {}, ErrorCode::bad_request, "malformed JSON: syntax error at byte 8"},
      {"NUL hides trailing garbage",
       "{}\0garbage"s,
       {},
       ErrorCode::bad_request,
       "malformed JSON: syntax error at byte 3"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto parsed = parse_json_object(c.payload, c.limits);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == c.code);
    CHECK(parsed.error().message == c.message);
  }
}

TEST_CASE("malformed JSON messages never quote the payload", "[protocol][json_request]") {
  auto parsed = parse_json_object(R"({"token":"s3cret)");
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.error().message.find("s3cret") == std::string::npos);
}

TEST_CASE("string fields", "[protocol][json_request]") {
  const json doc = json::parse(R"({"name":"fw","n":1,"nothing":null})");
  struct {
    const char* rule;
    std::string field;
    bool ok;
    std::string message;
  } cases[] = {
      {"present", "name", true, ""},
      {"missing", "absent", false, "missing required field 'absent'"},
      {"null counts as missing", "nothing", false, "missing required field 'nothing'"},
      {"wrong type", "n", false, "field 'n' must be a string"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto s = required_string(doc, c.field);
    CHECK(s.ok() == c.ok);
    if (!s.ok()) {
      CHECK(s.error().code == ErrorCode::bad_request);
      CHECK(s.error().message == c.message);
    }
  }
  CHECK(*required_string(doc, "name") == "fw");
  CHECK(optional_string(doc, "name")->value() == "fw");
  CHECK_FALSE(optional_string(doc, "absent")->has_value());
  CHECK_FALSE(optional_string(doc, "nothing")->has_value());
  auto wrong = optional_string(doc, "n");
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().message == "field 'n' must be a string");
}

TEST_CASE("integer fields are type- and range-checked", "[protocol][json_request]") {
  const json doc = json::parse(
      R"({"small":5,"neg":-3,"float":1.5,"whole_float":2.0,"text":"5","huge":18446744073709551615,"b":true})");
  struct {
    const char* rule;
    std::string field;
    std::int64_t min, max;
    bool ok;
    std::int64_t value;
    std::string message;
  } cases[] = {
      {"in range", "small", 0, 10, true, 5, ""},
      {"negative in range", "neg", -5, 0, true, -3, ""},
      {"below range", "neg", 0, 10, false, 0, "field 'neg' must be between 0 and 10"},
      {"above range", "small", 0, 4, false, 0, "field 'small' must be between 0 and 4"},
      {"float", "float", 0, 10, false, 0, "field 'float' must be an integer"},
      {"whole float is still a float", "whole_float", 0, 10, false, 0,
       "field 'whole_float' must be an integer"},
      {"string", "text", 0, 10, false, 0, "field 'text' must be an integer"},
      {"boolean", "b", 0, 10, false, 0, "field 'b' must be an integer"},
      {"beyond int64", "huge", 0, std::numeric_limits<std::int64_t>::max(), false, 0,
       "field 'huge' must be between 0 and 9223372036854775807"},
      {"missing", "absent", 0, 10, false, 0, "missing required field 'absent'"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto v = required_int(doc, c.field, c.min, c.max);
    CHECK(v.ok() == c.ok);
    if (v.ok()) {
      CHECK(*v == c.value);
    } else {
      CHECK(v.error().code == ErrorCode::bad_request);
      CHECK(v.error().message == c.message);
    }
  }
  CHECK_FALSE(optional_int(doc, "absent")->has_value());
  CHECK(optional_int(doc, "small")->value() == 5);
  CHECK_FALSE(optional_int(doc, "float").ok());
}

TEST_CASE("boolean, array, map and object fields", "[protocol][json_request]") {
  const json doc = json::parse(R"({"on":true,"n":1,"tags":["a","b"],"empty":[],"mixed":["a",1],"str":"a",
    "attributes":{"k":"v"},"bad_attributes":{"k":1},"rate":{"per_minute":5}})");
  CHECK(*required_bool(doc, "on"));
  CHECK(optional_bool(doc, "on")->value());
  CHECK_FALSE(optional_bool(doc, "absent")->has_value());
  CHECK(required_bool(doc, "n").error().message == "field 'n' must be a boolean");
  CHECK(required_bool(doc, "absent").error().message == "missing required field 'absent'");

  CHECK(*required_string_array(doc, "tags") == std::vector<std::string>{"a", "b"});
  CHECK(required_string_array(doc, "empty")->empty());
  CHECK(required_string_array(doc, "mixed").error().message == "field 'mixed' must be an array of strings");
  CHECK(required_string_array(doc, "str").error().message == "field 'str' must be an array of strings");
  CHECK_FALSE(optional_string_array(doc, "absent")->has_value());
  CHECK(optional_string_array(doc, "mixed").error().code == ErrorCode::bad_request);

  CHECK(*optional_string_map(doc, "attributes") == std::map<std::string, std::string>{{"k", "v"}});
  CHECK(optional_string_map(doc, "absent")->empty());
  CHECK(optional_string_map(doc, "bad_attributes").error().message ==
        "field 'bad_attributes' must be an object of strings");
  CHECK(optional_string_map(doc, "tags").error().message == "field 'tags' must be an object of strings");

  CHECK(optional_object(doc, "rate")->value()["per_minute"] == 5);
  CHECK_FALSE(optional_object(doc, "absent")->has_value());
  CHECK(optional_object(doc, "tags").error().message == "field 'tags' must be an object");
}

TEST_CASE("id fields are checked with the id rules", "[protocol][json_request]") {
  const json doc = json::parse(
      R"({"hardware_id":"dev-1","bad_hw":"a/b","id":"01H","bad_id":"a b","hardware_ids":["d-1","d-2"],
          "bad_ids":["d-1","x"]})");
  CHECK(*required_hardware_id(doc) == "dev-1");
  CHECK(required_hardware_id(doc, "bad_hw").error().message ==
        "invalid bad_hw 'a/b': must match ^[A-Za-z0-9_-]{3,128}$");
  CHECK(required_hardware_id(doc, "absent").error().message == "missing required field 'absent'");
  CHECK(*required_object_id(doc, "id") == "01H");
  CHECK(required_object_id(doc, "bad_id").error().message ==
        "invalid bad_id 'a b': must match ^[A-Za-z0-9_.:-]{1,128}$");
  CHECK_FALSE(optional_object_id(doc, "absent")->has_value());
  CHECK(optional_object_id(doc, "id")->value() == "01H");
  CHECK(*optional_hardware_id_array(doc) == std::vector<std::string>{"d-1", "d-2"});
  CHECK(optional_hardware_id_array(doc, "absent")->empty());
  CHECK(optional_hardware_id_array(doc, "bad_ids").error().message ==
        "invalid bad_ids 'x': must match ^[A-Za-z0-9_-]{3,128}$");
}
