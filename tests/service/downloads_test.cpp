// Downloads and DownloadTokens over FakePackageFiles: frames, the bound on re-requests, file failures.
#include "service/provisioning/downloads.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "protocol/core/encoding.h"
#include "protocol/core/secrets.h"
#include "protocol/frame.h"
#include "storage/packages.h"
#include "storage/tokens.h"
#include "tests/service/fake_package_files.h"
#include "tests/support/process.h"

using namespace dispatch;
using core::ErrorCode;
using json = nlohmann::json;

namespace {

struct Fixture {
  core::ManualClock clock;
  service::Config config;
  protocol::Topics topics;
  std::unique_ptr<storage::Database> db;
  testing::FakePackageFiles files;
  service::RecordingPublisher pub;
  service::DeviceAnswers answers{topics, pub, 1};
  service::BatchEffects effects;
  std::unique_ptr<service::provisioning::DownloadTokens> tokens;
  std::unique_ptr<service::provisioning::Downloads> downloads;
  std::string id = "01PKG";
  std::string data = "0123456789";

  // One service instance over the database at path (":memory:" by default; a file shared by several
  // fixtures stands for several instances on one database, or a restart).
  explicit Fixture(std::int64_t factor = 3, const std::string& path = ":memory:") {
    db = std::move(storage::Database::open(path)).value();
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
    if (!storage::PackageStore(*db).get(id).ok()) REQUIRE(storage::PackageStore(*db).insert(row).ok());
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
  // The token's row as the database holds it.
  storage::DownloadTokenRow row(const std::string& token) {
    return storage::TokenStore(*db).get_by_hash(service::provisioning::DownloadTokens::key_of(token)).value();
  }
};

std::string exhausted_message(std::int64_t bound, std::int64_t factor) {
  return fmt::format(
      "download token exhausted: it may pull at most {} bytes ({} x the package size); query the package "
      "again",
      bound, factor);
}

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
      CHECK(h["error"]["message"] == exhausted_message(10 * c.factor, c.factor));
      CHECK(bytes.empty());
      CHECK(f.get(t, 4, 4).first["error"]["message"] == "download token is invalid, spent or expired");
      CHECK(f.row(t).spent);
      CHECK(f.row(t).pulled_bytes == 4 * c.served);
    }
  }
}

TEST_CASE("downloads: the bound counts the clamped length of the last chunk", "[provisioning][downloads]") {
  Fixture f(1);
  const std::string t = f.token();
  REQUIRE_FALSE(f.get(t, 8, 4).first.contains("error"));  // 2 bytes
  CHECK(f.row(t).pulled_bytes == 2);
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

TEST_CASE("download tokens: an expired token is refused whatever its count", "[provisioning][downloads]") {
  Fixture f;
  const std::string t = f.token();
  REQUIRE_FALSE(f.get(t, 0, 4).first.contains("error"));
  CHECK(f.row(t).pulled_bytes == 4);
  f.clock.advance_s(3600);
  CHECK(f.get(t, 0, 4).first["error"]["code"] == "token_invalid");
}

// Issue 13: the bound is counted in the database. Two instances on one database (two connections to one
// SQLite file, each with its own DownloadTokens and Downloads) serve chunks of one token: together they
// stop at the bound, where each used to count only its own bytes and allow the whole bound.
TEST_CASE("downloads: two instances on one database together stop at the bound",
          "[provisioning][downloads]") {
  testing::TempDir dir;
  const std::string path = dir.path() + "/dispatch.db";
  Fixture a(1, path), b(1, path);  // 10 bytes per token
  const std::string t = a.token();
  REQUIRE_FALSE(a.get(t, 0, 4).first.contains("error"));
  REQUIRE_FALSE(b.get(t, 0, 4).first.contains("error"));
  // 8 bytes pulled: 4 more would pass 10, whichever instance is asked.
  auto [h, bytes] = a.get(t, 0, 4);
  CHECK(h["error"]["code"] == "token_invalid");
  CHECK(h["error"]["message"] == exhausted_message(10, 1));
  CHECK(bytes.empty());
  CHECK(b.get(t, 4, 4).first["error"]["message"] == "download token is invalid, spent or expired");
  CHECK(b.row(t).spent);
  CHECK(b.row(t).pulled_bytes == 8);
}

TEST_CASE("downloads: a restart keeps the count of a token", "[provisioning][downloads]") {
  testing::TempDir dir;
  const std::string path = dir.path() + "/dispatch.db";
  std::string t;
  {
    Fixture before(1, path);
    t = before.token();
    REQUIRE_FALSE(before.get(t, 0, 4).first.contains("error"));
    REQUIRE_FALSE(before.get(t, 0, 4).first.contains("error"));
  }
  Fixture after(1, path);  // a new DownloadTokens on the same database
  CHECK(after.row(t).pulled_bytes == 8);
  CHECK(after.get(t, 4, 4).first["error"]["message"] == exhausted_message(10, 1));
  CHECK(after.get(t, 8, 2).first["error"]["message"] == "download token is invalid, spent or expired");
}

// The pre-check reads the row before the bytes; another instance may count bytes in between. record()
// decides under the row lock: the late request is refused with the same answer and spends the token.
TEST_CASE("download tokens: record refuses what another instance pulled since the pre-check",
          "[provisioning][downloads]") {
  testing::TempDir dir;
  const std::string path = dir.path() + "/dispatch.db";
  Fixture a(1, path), b(1, path);
  const std::string t = a.token();
  const core::TimeMs now = a.clock.now_ms();
  auto row_a = a.tokens->check(t, "dev-1", now);
  auto row_b = b.tokens->check(t, "dev-1", now);
  REQUIRE(row_a.ok());
  REQUIRE(row_b.ok());
  REQUIRE(a.tokens->charge(*row_a, 8, 10).ok());
  REQUIRE(b.tokens->charge(*row_b, 8, 10).ok());  // both pass on the count they read (0)
  auto first = a.tokens->record(*row_a, now, 0, 8, 10);
  REQUIRE(first.ok());
  CHECK(first->pulled_bytes == 8);
  auto second = b.tokens->record(*row_b, now, 2, 8, 10);
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().code == ErrorCode::token_invalid);
  CHECK(second.error().message == exhausted_message(10, 1));
  CHECK(a.row(t).spent);
  CHECK(a.row(t).pulled_bytes == 8);
}

// HTTP: a stream is pre-checked at its start and counted when it ends. Two instances may both start a
// stream of one token; the one that ends past the bound spends the token, and that spend commits even
// inside the batch's transaction (the answer is not an error that would roll it back).
TEST_CASE("downloads: an HTTP stream is counted when it ends", "[provisioning][downloads]") {
  testing::TempDir dir;
  const std::string path = dir.path() + "/dispatch.db";
  Fixture a(1, path), b(1, path);
  a.files.published_dir = dir.path();
  b.files.published_dir = dir.path();
  const std::string t = a.token();
  auto sa = a.downloads->begin_stream(t);
  auto sb = b.downloads->begin_stream(t);
  REQUIRE(sa.ok());
  REQUIRE(sb.ok());
  CHECK(a.row(t).pulled_bytes == 0);  // nothing counted while the streams run
  // Both streams break after 6 bytes (the device would resume with a Range request).
  REQUIRE(a.db->transaction([&]() -> core::Status {
                a.downloads->end_stream(sa->tag, 0, 6);
                return {};
              })
              .ok());
  CHECK(a.row(t).pulled_bytes == 6);
  CHECK_FALSE(a.row(t).spent);
  REQUIRE(b.db->transaction([&]() -> core::Status {
                b.downloads->end_stream(sb->tag, 0, 6);  // 12 > 10: exhausted
                return {};
              })
              .ok());
  CHECK(a.row(t).spent);
  CHECK(a.row(t).pulled_bytes == 6);
  CHECK(a.downloads->begin_stream(t).error().code == ErrorCode::token_invalid);
}

TEST_CASE("downloads: an HTTP stream is refused at its start when the count leaves no whole package",
          "[provisioning][downloads]") {
  Fixture f(1);
  f.files.published_dir = "/nonexistent";
  const std::string t = f.token();
  REQUIRE_FALSE(f.get(t, 0, 4).first.contains("error"));
  auto s = f.downloads->begin_stream(t);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::token_invalid);
  CHECK(s.error().message == exhausted_message(10, 1));
  CHECK(f.row(t).spent);
}

TEST_CASE("download tokens: 40 bytes whose keys sort by issue, older 32-byte tokens still found",
          "[provisioning][downloads]") {
  Fixture f;
  // Three tokens in one millisecond and one a millisecond later: each key sorts after the one before, so
  // the index takes them at its end (the counter orders those of one millisecond).
  std::vector<std::string> issued, keys;
  for (int i = 0; i < 4; ++i) {
    if (i == 3) f.clock.advance_ms(1);
    issued.push_back(f.token());
    keys.push_back(service::provisioning::DownloadTokens::key_of(issued.back()));
  }
  for (std::size_t i = 0; i < issued.size(); ++i) {
    INFO("token " << i);
    CHECK(issued[i].size() == 54);
    const auto raw = core::base64url_decode(issued[i]);
    REQUIRE(raw.has_value());
    CHECK(raw->size() == 40);
    // The key: the 8-byte prefix in hex, then the token's SHA-256; the token itself is not in it.
    CHECK(keys[i] == core::hex_encode(raw->substr(0, 8)) + core::sha256_hex(issued[i]));
    CHECK(f.row(issued[i]).token_hash == keys[i]);
    if (i > 0) CHECK(keys[i - 1] < keys[i]);
  }
  // 256 random bits after the prefix: two tokens of one millisecond share at most the time part.
  CHECK(issued[0].substr(12) != issued[1].substr(12));

  // A token with a changed prefix (the same random part) is another token: not found.
  std::string forged = *core::base64url_decode(issued[0]);
  forged[7] = static_cast<char>(forged[7] ^ 1);
  CHECK(f.get(core::base64url_encode(forged), 0, 4).first["error"]["code"] == "token_invalid");

  // A token of the earlier format (Base64url of 32 random bytes, keyed by its plain SHA-256) that a
  // service before this one issued still serves its download until it expires.
  const std::string legacy = core::random_token();
  REQUIRE(legacy.size() == 43);
  CHECK(service::provisioning::DownloadTokens::key_of(legacy) == core::sha256_hex(legacy));
  storage::DownloadTokenRow row;
  row.token_hash = core::sha256_hex(legacy);
  row.hardware_id = "dev-1";
  row.package_id = f.id;
  row.created_at = f.clock.now_ms();
  row.expires_at = f.clock.now_ms() + 60'000;
  REQUIRE(storage::TokenStore(*f.db).insert(row).ok());
  auto [h, bytes] = f.get(legacy, 0, 4);
  REQUIRE_FALSE(h.contains("error"));
  CHECK(bytes == "0123");
}
