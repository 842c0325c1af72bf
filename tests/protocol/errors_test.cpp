#include "protocol/errors.h"

#include <catch2/catch.hpp>
#include <string>

using namespace dispatch::protocol;
using dispatch::core::Error;
using dispatch::core::ErrorCode;
using dispatch::core::make_error;

TEST_CASE("errors map to the one wire shape", "[protocol][errors]") {
  Error limited = make_error(ErrorCode::rate_limited, "slow down");
  limited.retry_after_s = 212;
  struct {
    const char* rule;
    Error error;
    std::optional<std::string> correlation_id;
    std::string payload;
  } cases[] = {
      {"code and message", make_error(ErrorCode::not_found, "no such device"), std::nullopt,
       R"({"error":{"code":"not_found","message":"no such device"}})"},
      {"correlation id at top level", make_error(ErrorCode::bad_request, "x"), "q-17",
       R"({"correlation_id":"q-17","error":{"code":"bad_request","message":"x"}})"},
      {"retry_after_s inside error", limited, "q-18",
       R"({"correlation_id":"q-18","error":{"code":"rate_limited","message":"slow down","retry_after_s":212}})"},
      {"invalid UTF-8 is replaced, not thrown", make_error(ErrorCode::internal, "bad \xff"), std::nullopt,
       "{\"error\":{\"code\":\"internal\",\"message\":\"bad \xef\xbf\xbd\"}}"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(error_payload(c.error, c.correlation_id) == c.payload);
  }
  const auto j = error_json(limited);
  CHECK(j["error"]["code"] == "rate_limited");
  CHECK(j["error"]["retry_after_s"] == 212);
  CHECK_FALSE(error_json(make_error(ErrorCode::conflict, "c"))["error"].contains("retry_after_s"));
}
