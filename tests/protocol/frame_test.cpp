#include "protocol/frame.h"

#include <catch2/catch.hpp>
#include <string>

using namespace dispatch::protocol;
using dispatch::core::ErrorCode;
using nlohmann::json;

TEST_CASE("frames encode and parse back", "[protocol][frame]") {
  using namespace std::string_literals;
  struct {
    const char* rule;
    json header;
    std::string body;
  } cases[] = {
      {"data chunk", {{"correlation_id", "d-1"}, {"offset", 0}, {"length", 5}, {"last", false}}, "ab\ncd"},
      {"binary body with NUL and newlines", {{"length", 4}}, "\0\n\xff\n"s},
      {"no length field", {{"id", "p1"}}, "xyz"},
      {"empty body", {{"length", 0}, {"last", true}}, ""},
      {"error-only frame", {{"error", {{"code", "token_invalid"}, {"message", "m"}}}}, ""},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    const std::string wire = encode_frame(c.header, c.body);
    CHECK(wire == c.header.dump() + "\n" + c.body);
    auto frame = parse_frame(wire);
    REQUIRE(frame.ok());
    CHECK(frame->header == c.header);
    CHECK(frame->body == c.body);
  }
}

TEST_CASE("malformed frames are refused", "[protocol][frame]") {
  struct {
    const char* rule;
    std::string payload;
    std::size_t max_header;
    ErrorCode code;
    std::string message;
  } cases[] = {
      {"no newline", R"({"length":0})", 4096, ErrorCode::bad_request, "frame has no header line"},
      {"no newline, not JSON", "abc", 4096, ErrorCode::bad_request, "frame has no header line"},
      {"empty payload", "", 4096, ErrorCode::bad_request, "frame has no header line"},
      {"header not JSON", "nope\nbody", 4096, ErrorCode::bad_request, "frame header must be a JSON object"},
      {"header an array", "[1]\nbody", 4096, ErrorCode::bad_request, "frame header must be a JSON object"},
      {"NUL in header", std::string("{}\0x\nbody", 9), 4096, ErrorCode::bad_request,
       "frame header must be a JSON object"},
      {"empty header", "\nbody", 4096, ErrorCode::bad_request, "frame header must be a JSON object"},
      {"length too small", "{\"length\":2}\nabc", 4096, ErrorCode::bad_request,
       "frame length 2 disagrees with 3 bytes of data"},
      {"length too large", "{\"length\":9}\nabc", 4096, ErrorCode::bad_request,
       "frame length 9 disagrees with 3 bytes of data"},
      {"negative length", "{\"length\":-1}\n", 4096, ErrorCode::bad_request,
       "frame field 'length' must be a non-negative integer"},
      {"fractional length", "{\"length\":1.5}\na", 4096, ErrorCode::bad_request,
       "frame field 'length' must be a non-negative integer"},
      {"string length", "{\"length\":\"1\"}\na", 4096, ErrorCode::bad_request,
       "frame field 'length' must be a non-negative integer"},
      {"header over the limit", "{\"a\":\"xxxxxxxxxx\"}\nb", 8, ErrorCode::too_large,
       "frame header exceeds 8 bytes"},
      {"no newline within the limit", std::string(100, 'x'), 8, ErrorCode::too_large,
       "frame header exceeds 8 bytes"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto frame = parse_frame(c.payload, c.max_header);
    REQUIRE_FALSE(frame.ok());
    CHECK(frame.error().code == c.code);
    CHECK(frame.error().message == c.message);
  }
}

TEST_CASE("an error header without a newline is an error-only frame", "[protocol][frame]") {
  auto frame = parse_frame(R"({"correlation_id":"d-1","error":{"code":"token_invalid","message":"spent"}})");
  REQUIRE(frame.ok());
  CHECK(frame->header["error"]["code"] == "token_invalid");
  CHECK(frame->body.empty());
}
