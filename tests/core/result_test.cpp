#include "protocol/core/result.h"

#include <catch2/catch.hpp>

using namespace dispatch::core;

TEST_CASE("error codes round-trip through their wire spelling", "[core][result]") {
  const ErrorCode all[] = {ErrorCode::bad_request,  ErrorCode::not_found,    ErrorCode::conflict,
                           ErrorCode::unauthorized, ErrorCode::rate_limited, ErrorCode::token_invalid,
                           ErrorCode::too_large,    ErrorCode::unavailable,  ErrorCode::internal};
  for (auto c : all) {
    auto back = error_code_from_string(to_string(c));
    REQUIRE(back.has_value());
    CHECK(*back == c);
  }
  CHECK(to_string(ErrorCode::rate_limited) == "rate_limited");
  CHECK_FALSE(error_code_from_string("nope").has_value());
}

TEST_CASE("Result holds a value or an error", "[core][result]") {
  Result<int> good = 42;
  REQUIRE(good.ok());
  CHECK(*good == 42);
  Result<int> bad = make_error(ErrorCode::not_found, "no such device");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::not_found);
  CHECK(bad.error().message == "no such device");
  Status s;
  CHECK(s.ok());
  Status f = make_error(ErrorCode::conflict, "x");
  CHECK_FALSE(f.ok());
}
