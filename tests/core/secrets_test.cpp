#include "protocol/core/secrets.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "protocol/core/encoding.h"

using namespace dispatch::core;

TEST_CASE("random_token is 256 bits of Base64url", "[core][secrets]") {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string t = random_token();
    REQUIRE(t.size() == 43);
    auto raw = base64url_decode(t);
    REQUIRE(raw.has_value());
    CHECK(raw->size() == 32);
    seen.insert(t);
  }
  CHECK(seen.size() == 100);
}

TEST_CASE("random_hex", "[core][secrets]") {
  const std::string h = random_hex(12);
  CHECK(h.size() == 24);
  CHECK(hex_decode(h).has_value());
  CHECK(h == hex_encode(*hex_decode(h)));  // lowercase
  CHECK(random_hex(0).empty());
  CHECK(random_hex(16) != random_hex(16));
}

TEST_CASE("sha256_hex matches the FIPS 180-2 vectors", "[core][secrets]") {
  struct {
    const char* rule;
    std::string input;
    const char* digest;
  } cases[] = {
      {"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"two blocks", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"one million a", std::string(1'000'000, 'a'),
       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(sha256_hex(c.input) == c.digest);
    // Incremental hashing in uneven chunks gives the same digest.
    Sha256 h;
    for (std::size_t i = 0; i < c.input.size(); i += 4093)
      h.update(std::string_view(c.input).substr(i, 4093));
    CHECK(h.final_hex() == c.digest);
  }
}

TEST_CASE("Sha256 starts over after final_hex and survives moves", "[core][secrets]") {
  Sha256 h;
  h.update("ab");
  h.update("c");
  CHECK(h.final_hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(h.final_hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  h.update("a");
  Sha256 moved = std::move(h);
  moved.update("bc");
  CHECK(moved.final_hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("constant_time_equal", "[core][secrets]") {
  struct {
    const char* rule;
    std::string a, b;
    bool equal;
  } cases[] = {
      {"same", "secret", "secret", true},
      {"both empty", "", "", true},
      {"one byte differs", "secret", "secreT", false},
      {"prefix is not equal", "secret", "secret2", false},
      {"empty vs non-empty", "", "x", false},
      {"embedded nul", std::string("a\0b", 3), std::string("a\0c", 3), false},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(constant_time_equal(c.a, c.b) == c.equal);
  }
}

TEST_CASE("new_id is a ULID", "[core][secrets]") {
  const std::string alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  struct {
    const char* rule;
    TimeMs time;
    const char* prefix;
  } cases[] = {
      {"epoch", 0, "0000000000"},
      {"ULID spec example time", 1469918176385, "01ARYZ6S41"},
      {"largest 48-bit time", (TimeMs{1} << 48) - 1, "7ZZZZZZZZZ"},
      {"negative clamped to zero", -5, "0000000000"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    const std::string id = new_id(c.time);
    REQUIRE(id.size() == 26);
    CHECK(id.substr(0, 10) == c.prefix);
    CHECK(std::all_of(id.begin(), id.end(), [&](char ch) { return alphabet.find(ch) != std::string::npos; }));
  }
  const std::string now_id = new_id();
  CHECK(now_id.size() == 26);
}

TEST_CASE("new_id sorts by creation time", "[core][secrets]") {
  // Later milliseconds sort later.
  CHECK(new_id(1'790'000'000'000) < new_id(1'790'000'000'001));
  CHECK(new_id(1'790'000'000'999) < new_id(1'790'000'001'000));
  // Within one millisecond ids still increase strictly.
  std::string previous = new_id(1'800'000'000'000);
  for (int i = 0; i < 1000; ++i) {
    const std::string next = new_id(1'800'000'000'000);
    REQUIRE(previous < next);
    previous = next;
  }
  // Consecutive calls with the real clock never go backwards.
  previous = new_id();
  for (int i = 0; i < 1000; ++i) {
    const std::string next = new_id();
    REQUIRE(previous < next);
    previous = next;
  }
}
