#include "protocol/core/encoding.h"

#include <catch2/catch.hpp>

using namespace dispatch::core;

TEST_CASE("base64 encodes the RFC 4648 vectors", "[core][encoding]") {
  struct {
    const char* bytes;
    const char* base64;
    const char* base64url;
    const char* hex;
  } cases[] = {
      {"", "", "", ""},
      {"f", "Zg==", "Zg", "66"},
      {"fo", "Zm8=", "Zm8", "666f"},
      {"foo", "Zm9v", "Zm9v", "666f6f"},
      {"foob", "Zm9vYg==", "Zm9vYg", "666f6f62"},
      {"fooba", "Zm9vYmE=", "Zm9vYmE", "666f6f6261"},
      {"foobar", "Zm9vYmFy", "Zm9vYmFy", "666f6f626172"},
      {"\xfb\xff\xbf", "+/+/", "-_-_", "fbffbf"},
  };
  for (const auto& c : cases) {
    INFO(c.bytes);
    CHECK(base64_encode(c.bytes) == c.base64);
    CHECK(base64url_encode(c.bytes) == c.base64url);
    CHECK(hex_encode(c.bytes) == c.hex);
    CHECK(base64_decode(c.base64) == std::optional<std::string>(c.bytes));
    CHECK(base64url_decode(c.base64url) == std::optional<std::string>(c.bytes));
    CHECK(hex_decode(c.hex) == std::optional<std::string>(c.bytes));
  }
}

TEST_CASE("every byte value round-trips", "[core][encoding]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t len = 0; len <= all.size(); len += 37) {
    const std::string bytes = all.substr(0, len);
    CHECK(base64_decode(base64_encode(bytes)) == bytes);
    CHECK(base64url_decode(base64url_encode(bytes)) == bytes);
    CHECK(hex_decode(hex_encode(bytes)) == bytes);
  }
}

TEST_CASE("base64_decode is strict", "[core][encoding]") {
  struct {
    const char* rule;
    const char* text;
  } cases[] = {
      {"missing padding", "Zg"},
      {"one missing pad", "Zg="},
      {"three pads", "Z==="},
      {"only pads", "===="},
      {"pad in the middle", "Zg==Zg=="},
      {"url alphabet refused", "-_-_"},
      {"whitespace refused", "Zm9v Zm9v"},
      {"trailing newline refused", "Zm9v\n"},
      {"non-ASCII refused", "Zm9\xc3\xa4"},
      {"non-zero unused bits", "Zh=="},
      {"non-zero unused bits, one pad", "Zm9="},
      {"length not multiple of 4", "Zm9vY"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK_FALSE(base64_decode(c.text).has_value());
  }
  CHECK_FALSE(base64_decode(std::string_view("Zm\0v", 4)).has_value());
}

TEST_CASE("base64url_decode is strict", "[core][encoding]") {
  struct {
    const char* rule;
    const char* text;
  } cases[] = {
      {"padding refused", "Zg=="},    {"standard alphabet refused", "+/+/"},
      {"impossible length", "Zm9vY"}, {"non-zero unused bits", "Zh"},
      {"whitespace", "Zm 9v"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK_FALSE(base64url_decode(c.text).has_value());
  }
}

TEST_CASE("hex_decode", "[core][encoding]") {
  CHECK(hex_decode("DEADbeef") == std::optional<std::string>("\xde\xad\xbe\xef"));
  CHECK_FALSE(hex_decode("abc").has_value());
  CHECK_FALSE(hex_decode("zz").has_value());
  CHECK_FALSE(hex_decode("0x").has_value());
}

TEST_CASE("escape_for_message keeps messages printable and bounded", "[core][encoding]") {
  struct {
    const char* rule;
    std::string text;
    std::size_t max;
    std::string expected;
  } cases[] = {
      {"printable kept", "abc 1.0.0-rc", 64, "abc 1.0.0-rc"},
      {"UTF-8 escaped", "\xc3\xa4", 64, "\\xc3\\xa4"},
      {"control characters escaped", "a\nb\x7f", 64, "a\\x0ab\\x7f"},
      {"nul escaped", std::string("a\0b", 3), 64, "a\\x00b"},
      {"cut at max", "abcdef", 3, "abc..."},
      {"exactly max", "abc", 3, "abc"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(escape_for_message(c.text, c.max) == c.expected);
  }
}
