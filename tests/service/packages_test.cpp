// Packages over FakePackageFiles: what the packages API answers when the files fail, and what stays
// recorded (a chunk that did not reach the disk is never recorded; a failed publish keeps the upload).
#include "service/provisioning/packages.h"

#include <catch2/catch.hpp>

#include "protocol/core/secrets.h"
#include "storage/packages.h"
#include "tests/service/fake_package_files.h"

using namespace dispatch;
using core::ErrorCode;
using json = nlohmann::json;
using Kind = service::provisioning::PackageFiles::Kind;

namespace {

struct Fixture {
  core::ManualClock clock;
  service::Config config;
  std::unique_ptr<storage::Database> db = std::move(storage::Database::open(":memory:")).value();
  testing::FakePackageFiles files;
  service::provisioning::DownloadTokens tokens{*db, 3'600'000, 3};
  service::BatchEffects effects;
  service::provisioning::Packages packages{config, clock, *db, files, tokens, effects};

  std::string create(const std::string& bytes) {
    auto r = packages.api("create", json{{"name", "fw"},
                                         {"version", "1.0.0"},
                                         {"type", "internal"},
                                         {"sha256", core::sha256_hex(bytes)},
                                         {"size", bytes.size()},
                                         {"available", true}});
    REQUIRE(r.ok());
    return (*r)["id"];
  }
  core::Result<json> upload(const std::string& id, std::int64_t offset, std::string_view bytes,
                            bool last = false) {
    return packages.upload(json{{"id", id}, {"offset", offset}, {"last", last}}, bytes);
  }
  json get(const std::string& id) { return *packages.api("get", json{{"id", id}}); }
};

}  // namespace

TEST_CASE("packages: a full disk refuses the chunk and records nothing", "[provisioning][packages]") {
  Fixture f;
  const std::string id = f.create("abcdefgh");
  f.files.fail_write = ENOSPC;
  auto r = f.upload(id, 0, "abcd");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::unavailable);
  CHECK(r.error().message == "package storage is full");
  CHECK(f.get(id)["received"] == 0);
  CHECK(f.get(id)["state"] == "pending_upload");
  // Space again: the same frame goes through.
  CHECK((*f.upload(id, 0, "abcd"))["received"] == 4);
  CHECK((*f.upload(id, 4, "efgh", true))["state"] == "ready");
  CHECK(f.files.bins.at(id) == "abcdefgh");
}

TEST_CASE("packages: a failed publish keeps the upload and the same last frame completes it",
          "[provisioning][packages]") {
  struct {
    const char* rule;
    std::optional<int> testing::FakePackageFiles::*failure;
    int err;
    std::string message;
  } cases[] = {
      {"fsync fails", &testing::FakePackageFiles::fail_fsync, EIO,
       "package storage failed: fsync: Input/output error"},
      {"rename fails", &testing::FakePackageFiles::fail_rename, EACCES,
       "package storage failed: rename: Permission denied"},
      {"disk full while publishing", &testing::FakePackageFiles::fail_fsync, ENOSPC,
       "package storage is full"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      Fixture f;
      const std::string id = f.create("abcdefgh");
      REQUIRE(f.upload(id, 0, "abcd").ok());
      f.files.*c.failure = c.err;
      auto r = f.upload(id, 4, "efgh", true);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::unavailable);
      CHECK(r.error().message == c.message);
      CHECK(f.get(id)["state"] == "pending_upload");
      CHECK(f.get(id)["received"] == 8);
      CHECK_FALSE(f.effects.noted("after_package_ready_commit"));
      CHECK((*f.upload(id, 4, "efgh", true))["state"] == "ready");
      CHECK(f.effects.noted("after_package_ready_commit"));
    }
  }
}

TEST_CASE("packages: a digest mismatch forgets the chunks", "[provisioning][packages]") {
  Fixture f;
  const std::string id = f.create("abcd");
  auto r = f.upload(id, 0, "abcX", true);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::bad_request);
  CHECK(f.get(id)["received"] == 0);
  CHECK((*f.upload(id, 0, "abcd", true))["state"] == "ready");
}

TEST_CASE("packages: chunk bounds are checked without overflow", "[provisioning][packages]") {
  Fixture f;
  const std::string id = f.create("abcd");
  struct {
    const char* rule;
    std::int64_t offset;
    std::string bytes;
    std::string message;
  } cases[] = {
      {"past the end", 2, "abc", "chunk [2, 5) lies beyond the package size 4"},
      {"offset past the end, no bytes", 5, "", "chunk [5, 5) lies beyond the package size 4"},
      {"offset at the int64 maximum", std::numeric_limits<std::int64_t>::max(), "ab",
       "chunk at offset 9223372036854775807 lies beyond the package size 4"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      auto r = f.upload(id, c.offset, c.bytes);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == ErrorCode::bad_request);
      CHECK(r.error().message == c.message);
      CHECK(f.files.writes == 0);
    }
  }
}

TEST_CASE("packages: start-up touches only files the database knows", "[provisioning][packages]") {
  Fixture f;
  const std::string ready = f.create("abcd");
  REQUIRE(f.upload(ready, 0, "abcd", true).ok());
  const std::string pending = f.create("efgh");
  REQUIRE(f.upload(pending, 0, "ef").ok());
  // As a crash could leave them: a stale upload of a ready package, a published file of a pending one.
  f.files.parts[ready] = "abcd";
  f.files.bins[pending] = f.files.parts.at(pending);
  f.files.parts.erase(pending);
  f.files.parts["01UNKNOWN"] = "x";
  f.files.bins["01UNKNOWN2"] = "y";
  REQUIRE(f.packages.start().ok());
  CHECK(f.files.parts.count(ready) == 0);
  CHECK(f.files.bins.at(ready) == "abcd");
  CHECK(f.files.bins.count(pending) == 0);
  CHECK(f.files.parts.at(pending) == "ef");
  CHECK(f.files.parts.count("01UNKNOWN") == 1);
  CHECK(f.files.bins.count("01UNKNOWN2") == 1);
}

TEST_CASE("packages: delete removes the row, the tokens and the files", "[provisioning][packages]") {
  Fixture f;
  const std::string id = f.create("abcd");
  REQUIRE(f.upload(id, 0, "abcd", true).ok());
  REQUIRE(f.tokens.issue("dev-1", id, f.clock.now_ms()).ok());
  auto r = f.packages.api("delete", json{{"id", id}});
  REQUIRE(r.ok());
  CHECK((*r)["deleted"] == true);
  CHECK(f.files.bins.count(id) == 0);
  CHECK(f.packages.api("get", json{{"id", id}}).error().code == ErrorCode::not_found);
  CHECK(f.packages.api("rename", json{{"id", id}}).error().message == "unknown API action packages/rename");
}
