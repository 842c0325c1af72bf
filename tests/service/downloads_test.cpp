// Downloads and DownloadTokens over FakePackageFiles: frames, the bound on re-requests, file failures.
#include "service/provisioning/downloads.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "protocol/core/secrets.h"
#include "protocol/frame.h"
#include "storage/packages.h"
#include "tests/service/fake_package_files.h"

using namespace dispatch;
using core::ErrorCode;
using json = nlohmann::json;

namespace {

struct Fixture {
  core::ManualClock clock;
  service::Config config;
  protocol::Topics topics;
  std::unique_ptr<storage::Database> db = std::move(storage::Database::open(":memory:")).value();
  testing::FakePackageFiles files;
  service::RecordingPublisher pub;
  service::DeviceAnswers answers{topics, pub, 1};
  service::BatchEffects effects;
  std::unique_ptr<service::provisioning::DownloadTokens> tokens;
  std::unique_ptr<service::provisioning::Downloads> downloads;
  std::string id = "01PKG";
  std::string data = "0123456789";

  explicit Fixture(std::int64_t factor = 3) {
    config.provisioning_max_chunk_bytes = 4;
    tokens = std::make_unique<service::provisioning::DownloadTokens>(*db, 3'600'000, factor);
    downloads = std::make_unique<service::provisioning::Downloads>(config, clock, *db, files, *tokens,
                                                                   answers, effects);
    storage::PackageRow row;
    row.id = id;
    row.name = "fw";
    row.version = "1.0.0";
    row.size = static_cast<std::int64_t>(data.size());
    row.sha256 = core::sha256_hex(data);
    row.state = "ready";
    REQUIRE(storage::PackageStore(*db).insert(row).ok());
    files.bins[id] = data;
  }
  std::string token(const std::string& hw = "dev-1") { return tokens->issue(hw, id, clock.now_ms())->token; }
  std::pair<json, std::string> get(const std::string& token, std::int64_t offset, std::int64_t length,
                                   const std::string& hw = "dev-1") {
    pub.sent.clear();
    service::InboundMessage m;
    m.payload =
        json{{"download_token", token}, {"offset", offset}, {"length", length}, {"correlation_id", "d"}}
            .dump();
    downloads->on_download(hw, m);
    REQUIRE(pub.sent.size() == 1);
    CHECK(pub.sent[0].topic == "esthesis/provisioning/data/" + hw);
    auto f = protocol::parse_frame(pub.sent[0].payload);
    REQUIRE(f.ok());
    CHECK(f->header["correlation_id"] == "d");
    return {f->header, std::string(f->body)};
  }
};

}  // namespace

TEST_CASE("downloads: chunks, the last flag, then spent", "[provisioning][downloads]") {
  Fixture f;
  const std::string t = f.token();
  std::string got;
  for (std::int64_t off : {0, 4, 8}) {
    auto [h, bytes] = f.get(t, off, 4);
    REQUIRE_FALSE(h.contains("error"));
    CHECK(h["last"] == (off == 8));
    CHECK(h["total"] == 10);
    got += bytes;
  }
  CHECK(got == f.data);
  CHECK(f.effects.noted("after_token_spend_commit"));
  f.effects.after_commit();
  CHECK_FALSE(f.effects.noted("after_token_spend_commit"));
  CHECK(f.get(t, 0, 4).first["error"]["code"] == "token_invalid");
}

TEST_CASE("downloads: re-requests are bounded by max_download_factor x size", "[provisioning][downloads]") {
  struct {
    const char* rule;
    std::int64_t factor;
    int served;  // 4-byte requests of chunk 0 served before the refusal
  } cases[] = {
      {"factor 1: 10 bytes, two chunks", 1, 2},
      {"factor 3: 30 bytes, seven chunks", 3, 7},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      Fixture f(c.factor);
      const std::string t = f.token();
      for (int i = 0; i < c.served; ++i) REQUIRE_FALSE(f.get(t, 0, 4).first.contains("error"));
      auto [h, bytes] = f.get(t, 0, 4);
      CHECK(h["error"]["code"] == "token_invalid");
      CHECK(h["error"]["message"] ==
            fmt::format(
                "download token exhausted: it may pull at most {} bytes ({} x the package size); query the "
                "package again",
                10 * c.factor, c.factor));
      CHECK(bytes.empty());
      CHECK(f.get(t, 4, 4).first["error"]["message"] == "download token is invalid, spent or expired");
      CHECK(f.tokens->pulled(core::sha256_hex(t)) == 0);
    }
  }
}

TEST_CASE("downloads: the bound counts the clamped length of the last chunk", "[provisioning][downloads]") {
  Fixture f(1);
  const std::string t = f.token();
  REQUIRE_FALSE(f.get(t, 8, 4).first.contains("error"));  // 2 bytes
  CHECK(f.tokens->pulled(core::sha256_hex(t)) == 2);
  REQUIRE_FALSE(f.get(t, 0, 4).first.contains("error"));
  REQUIRE_FALSE(f.get(t, 4, 4).first.contains("error"));  // 10 bytes in all: the download completes
}

TEST_CASE("downloads: a missing file is unavailable, the token stays usable", "[provisioning][downloads]") {
  Fixture f;
  const std::string t = f.token();
  f.files.bins.clear();
  auto [h, bytes] = f.get(t, 0, 4);
  CHECK(h["error"]["code"] == "unavailable");
  // The wire form of unavailable (wire_error, as for every answer): the file error's detail is logged only.
  CHECK(h["error"]["message"] == "service temporarily unavailable; retry later");
  f.files.bins[f.id] = f.data;
  CHECK(f.get(t, 0, 4).second == "0123");
}

TEST_CASE("download tokens: expiry prunes the tally", "[provisioning][downloads]") {
  Fixture f;
  const std::string t = f.token();
  REQUIRE_FALSE(f.get(t, 0, 4).first.contains("error"));
  CHECK(f.tokens->pulled(core::sha256_hex(t)) == 4);
  f.clock.advance_s(3600);
  f.tokens->prune(f.clock.now_ms());
  CHECK(f.tokens->pulled(core::sha256_hex(t)) == 0);
  CHECK(f.get(t, 0, 4).first["error"]["code"] == "token_invalid");
}
