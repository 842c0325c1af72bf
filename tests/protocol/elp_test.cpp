#include "protocol/elp.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using namespace dispatch::protocol;
using dispatch::core::ErrorCode;
using Kind = ElpValue::Kind;

TEST_CASE("eLP lines as esthesis agents send them", "[protocol][elp]") {
  struct {
    const char* rule;
    std::string text;
    std::vector<ElpValue> expected;
  } cases[] = {
      {"quoted firmware version", "health firmware='1.2.3'", {{"health", "firmware", "1.2.3", Kind::string}}},
      {"unquoted ping time",
       "health ping=2026-11-26T14:22:44Z",
       {{"health", "ping", "2026-11-26T14:22:44Z", Kind::string}}},
      {"telemetry with suffixes",
       "health memoryTotal=100l,memoryUsed=50l,loadAverage1=0.5d",
       {{"health", "memoryTotal", "100", Kind::integer},
        {"health", "memoryUsed", "50", Kind::integer},
        {"health", "loadAverage1", "0.5", Kind::floating}}},
      {"every number suffix",
       "m a=5i,b=5l,c=5s,d=5b,e=5bi,f=2f,g=1.5d,h=1.5bd,i=7,j=-2.5,k=1e-05d",
       {{"m", "a", "5", Kind::integer},
        {"m", "b", "5", Kind::integer},
        {"m", "c", "5", Kind::integer},
        {"m", "d", "5", Kind::integer},
        {"m", "e", "5", Kind::integer},
        {"m", "f", "2", Kind::floating},
        {"m", "g", "1.5", Kind::floating},
        {"m", "h", "1.5", Kind::floating},
        {"m", "i", "7", Kind::integer},
        {"m", "j", "-2.5", Kind::floating},
        {"m", "k", "1e-05", Kind::floating}}},
      {"booleans",
       "s on=true,off=false",
       {{"s", "on", "true", Kind::boolean}, {"s", "off", "false", Kind::boolean}}},
      {"quoted string with spaces, commas and =",
       "m note='a b, c=d',x=1",
       {{"m", "note", "a b, c=d", Kind::string}, {"m", "x", "1", Kind::integer}}},
      {"escaped quote", R"(m q='it\'s')", {{"m", "q", "it's", Kind::string}}},
      {"empty quoted string", "m q=''", {{"m", "q", "", Kind::string}}},
      {"number-like with wrong suffix is text", "m v=1.5i", {{"m", "v", "1.5i", Kind::string}}},
      {"trailing timestamp is accepted",
       "health firmware='1.2.3' 2026-11-26T14:22:44Z",
       {{"health", "firmware", "1.2.3", Kind::string}}},
      {"timestamp with fraction and offset",
       "m x=1 2026-11-26T14:22:44.123+02:00",
       {{"m", "x", "1", Kind::integer}}},
      {"several lines, CRLF and blank lines",
       "a x=1\r\n\nb y='z'\n",
       {{"a", "x", "1", Kind::integer}, {"b", "y", "z", Kind::string}}},
      {"empty pairs from a failed probe are skipped",
       "health ,loadAverage1=0.5d,",
       {{"health", "loadAverage1", "0.5", Kind::floating}}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto values = parse_elp(c.text);
    REQUIRE(values.ok());
    CHECK(*values == c.expected);
  }
}

TEST_CASE("malformed eLP is refused", "[protocol][elp]") {
  struct {
    const char* rule;
    std::string text;
    std::string message;
  } cases[] = {
      {"empty payload", "", "eLP payload has no values"},
      {"blank lines only", "\n \n", "eLP payload has no values"},
      {"category only", "health", "eLP line 1: no values"},
      {"category and space only", "health ", "eLP line 1: no values"},
      {"bad category", "he/alth x=1", "eLP line 1: category must match [A-Za-z0-9_.-]+"},
      {"leading space", " health x=1", "eLP line 1: category must match [A-Za-z0-9_.-]+"},
      {"missing =", "health firmware", "eLP line 1: a value has no '='"},
      {"missing = before comma", "health a,b=1", "eLP line 1: a value has no '='"},
      {"empty name", "health =1", "eLP line 1: value name must match [A-Za-z0-9_.-]+"},
      {"empty value", "health a=,b=1", "eLP line 1: empty value"},
      {"unterminated quote", "health a='1.2", "eLP line 1: unterminated quote"},
      {"text after closing quote", "health a='1'x", "eLP line 1: text after a closing quote"},
      {"quote inside unquoted value", "health a=1'2", "eLP line 1: quote inside an unquoted value"},
      {"bad timestamp", "health a=1 yesterday", "eLP line 1: timestamp must be RFC 3339"},
      {"text after timestamp", "health a=1 2026-11-26T14:22:44Z x", "eLP line 1: text after the timestamp"},
      {"error on a later line", "a x=1\nb y", "eLP line 2: a value has no '='"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto values = parse_elp(c.text);
    REQUIRE_FALSE(values.ok());
    CHECK(values.error().code == ErrorCode::bad_request);
    CHECK(values.error().message == c.message);
  }
}
