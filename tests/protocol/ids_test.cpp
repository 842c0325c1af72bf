#include "protocol/ids.h"

#include <catch2/catch.hpp>
#include <string>

using namespace dispatch::protocol;
using dispatch::core::ErrorCode;

TEST_CASE("hardware ids follow ^[A-Za-z0-9_-]{3,128}$", "[protocol][ids]") {
  using namespace std::string_literals;
  struct {
    const char* rule;
    std::string id;
    bool valid;
  } cases[] = {
      {"letters digits dash underscore", "dev-1_A", true},
      {"minimum length 3", "abc", true},
      {"maximum length 128", std::string(128, 'a'), true},
      {"too short", "ab", false},
      {"empty", "", false},
      {"too long", std::string(129, 'a'), false},
      {"slash", "dev/1", false},
      {"plus wildcard", "dev+", false},
      {"hash wildcard", "dev#", false},
      {"NUL", "dev\0x"s, false},
      {"space", "dev 1", false},
      {"dot is not allowed", "dev.1", false},
      {"colon is not allowed", "dev:1", false},
      {"non-ascii", "d\xc3\xa9v", false},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(valid_hardware_id(c.id) == c.valid);
    auto s = check_hardware_id(c.id);
    CHECK(s.ok() == c.valid);
    if (!c.valid) CHECK(s.error().code == ErrorCode::bad_request);
  }
}

TEST_CASE("object ids follow ^[A-Za-z0-9_.:-]{1,128}$", "[protocol][ids]") {
  using namespace std::string_literals;
  struct {
    const char* rule;
    std::string id;
    bool valid;
  } cases[] = {
      {"ulid", "01HZX3N5W8Q9R7T6Y5V4C3B2A1", true},
      {"single char", "a", true},
      {"dot and colon", "q-17.a:b", true},
      {"max length", std::string(128, 'x'), true},
      {"empty", "", false},
      {"too long", std::string(129, 'x'), false},
      {"slash", "a/b", false},
      {"plus", "a+b", false},
      {"hash", "a#", false},
      {"space", "a b", false},
      {"NUL", "a\0"s, false},
      {"newline", "a\n", false},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(valid_object_id(c.id) == c.valid);
    auto s = check_object_id(c.id, "request_id");
    CHECK(s.ok() == c.valid);
    if (!c.valid) CHECK(s.error().code == ErrorCode::bad_request);
  }
}

TEST_CASE("id errors quote the offending id safely", "[protocol][ids]") {
  using namespace std::string_literals;
  struct {
    const char* rule;
    std::string id;
    std::string message;
  } cases[] = {
      {"plain", "a b", "invalid hardware_id 'a b': must match ^[A-Za-z0-9_-]{3,128}$"},
      {"non-printables escaped", "a\0\n'\\"s,
       "invalid hardware_id 'a\\x00\\x0a\\x27\\x5c': must match ^[A-Za-z0-9_-]{3,128}$"},
      {"truncated at 64 bytes", std::string(200, 'z') + "/",
       "invalid hardware_id '" + std::string(64, 'z') + "...': must match ^[A-Za-z0-9_-]{3,128}$"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto s = check_hardware_id(c.id);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::bad_request);
    CHECK(s.error().message == c.message);
  }
  auto field = check_hardware_id("x", "hardware_ids");
  REQUIRE_FALSE(field.ok());
  CHECK(field.error().message == "invalid hardware_ids 'x': must match ^[A-Za-z0-9_-]{3,128}$");
  auto object = check_object_id("a/b", "command_id");
  REQUIRE_FALSE(object.ok());
  CHECK(object.error().message == "invalid command_id 'a/b': must match ^[A-Za-z0-9_.:-]{1,128}$");
}
