#include "protocol/reply_line.h"

#include <catch2/catch.hpp>
#include <string>

using namespace dispatch::protocol;
using dispatch::core::ErrorCode;

TEST_CASE("reply lines are read", "[protocol][reply_line]") {
  struct {
    const char* rule;
    std::string wire;
    ReplyLine expected;
  } cases[] = {
      {"success with output", "c1 s hello", {"c1", true, "hello"}},
      {"failure with output", "c1 f boom", {"c1", false, "boom"}},
      {"empty output with trailing space", "c1 s ", {"c1", true, ""}},
      {"no trailing space", "c1 s", {"c1", true, ""}},
      {"failure, no trailing space", "c1 f", {"c1", false, ""}},
      {"output keeps spaces", "c1 s a  b ", {"c1", true, "a  b "}},
      {"output keeps newlines", "c1 s line1\nline2\n", {"c1", true, "line1\nline2\n"}},
      {"output may start with a space", "c1 f  x", {"c1", false, " x"}},
      {"id with dot and colon", "a.b:c s ok", {"a.b:c", true, "ok"}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto reply = parse_reply_line(c.wire);
    REQUIRE(reply.ok());
    CHECK(*reply == c.expected);
  }
}

TEST_CASE("malformed reply lines are refused", "[protocol][reply_line]") {
  struct {
    const char* rule;
    std::string wire;
    std::string message;
  } cases[] = {
      {"empty", "", "reply line has no flag"},
      {"id only", "abc", "reply line has no flag"},
      {"unknown flag", "abc x out", "reply flag 'x' must be 's' or 'f'"},
      {"flag too long", "abc sx", "reply flag 'sx' must be 's' or 'f'"},
      {"flag too long with output", "abc ss out", "reply flag 'ss' must be 's' or 'f'"},
      {"empty flag", "abc ", "reply flag '' must be 's' or 'f'"},
      {"double space before flag", "abc  s", "reply flag '' must be 's' or 'f'"},
      {"upper case flag", "abc S", "reply flag 'S' must be 's' or 'f'"},
      {"empty id", " s out", "invalid command id '': must match ^[A-Za-z0-9_.:-]{1,128}$"},
      {"id with slash", "a/b s out", "invalid command id 'a/b': must match ^[A-Za-z0-9_.:-]{1,128}$"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto reply = parse_reply_line(c.wire);
    REQUIRE_FALSE(reply.ok());
    CHECK(reply.error().code == ErrorCode::bad_request);
    CHECK(reply.error().message == c.message);
  }
}

TEST_CASE("encoded reply lines parse back", "[protocol][reply_line]") {
  struct {
    const char* rule;
    ReplyLine line;
    std::string wire;
  } cases[] = {
      {"success", {"c1", true, "out put"}, "c1 s out put"},
      {"failure empty output", {"c1", false, ""}, "c1 f "},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(encode_reply_line(c.line.id, c.line.success, c.line.output) == c.wire);
    auto back = parse_reply_line(c.wire);
    REQUIRE(back.ok());
    CHECK(*back == c.line);
  }
}
