// Provisioning without a broker (PROTOCOL §2, §3 packages): in-memory or file database, a manual clock and
// a recording publisher.
#include "service/provisioning.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <thread>

#include "protocol/core/secrets.h"
#include "protocol/core/signature.h"
#include "protocol/core/time.h"
#include "protocol/frame.h"
#include "storage/database.h"
#include "storage/devices.h"
#include "tests/support/process.h"

using namespace dispatch;
using core::ErrorCode;
using core::KeyType;
using core::PrivateKey;
using json = nlohmann::json;

namespace {

const PrivateKey& key_of(KeyType t) {
  static std::map<KeyType, PrivateKey> keys;
  auto it = keys.find(t);
  if (it == keys.end()) it = keys.emplace(t, PrivateKey::generate(t)).first;
  return it->second;
}

struct Fixture {
  testing::TempDir dir;
  core::ManualClock clock;
  service::Config config;
  protocol::Topics topics;
  std::unique_ptr<storage::Database> db;
  service::RecordingPublisher pub;
  service::BatchEffects effects;
  std::unique_ptr<service::Provisioning> prov;
  int nonce_counter = 0;

  explicit Fixture(bool file_db = false, std::string data_dir = {}) {
    config.storage_data_dir = data_dir.empty() ? dir.path() + "/pkgs" : data_dir;
    open(file_db ? dir.path() + "/dispatch.db" : ":memory:");
  }
  void open(const std::string& path) {
    prov.reset();
    db.reset();
    auto d = storage::Database::open(path);
    REQUIRE(d.ok());
    db = std::move(d).value();
    prov = std::make_unique<service::Provisioning>(config, clock, *db, pub, topics, effects);
    REQUIRE(prov->start().ok());
  }

  json api(const std::string& action, const json& body) {
    auto r = prov->api(action, body);
    if (!r)
      return json{{"error", {{"code", core::to_string(r.error().code)}, {"message", r.error().message}}}};
    return *r;
  }
  json upload(const std::string& id, std::int64_t offset, std::string_view bytes, bool last = false) {
    auto r =
        prov->upload(json{{"id", id}, {"offset", offset}, {"length", bytes.size()}, {"last", last}}, bytes);
    if (!r)
      return json{{"error", {{"code", core::to_string(r.error().code)}, {"message", r.error().message}}}};
    return *r;
  }
  void add_device(const std::string& hw, KeyType t = KeyType::rsa, std::vector<std::string> tags = {}) {
    storage::DeviceRow d;
    d.hardware_id = hw;
    d.public_key_pem = key_of(t).public_pem();
    d.key_type = std::string(core::to_string(t));
    d.tags = std::move(tags);
    REQUIRE(storage::DeviceStore(*db).upsert(d, clock.now_ms()).ok());
  }
  // An internal package, uploaded and ready.
  std::string add_package(const std::string& version, const std::string& bytes, json extra = json::object()) {
    json body{{"name", "fw"},         {"version", version},
              {"type", "internal"},   {"sha256", core::sha256_hex(bytes)},
              {"size", bytes.size()}, {"available", true}};
    body.update(extra);
    auto created = api("create", body);
    REQUIRE(created.contains("id"));
    const std::string id = created["id"];
    const auto chunk = static_cast<std::size_t>(config.provisioning_max_chunk_bytes);
    json last;
    for (std::size_t at = 0; at < bytes.size() || at == 0; at += chunk) {
      last = upload(id, static_cast<std::int64_t>(at), std::string_view(bytes).substr(at, chunk));
      if (bytes.empty()) break;
    }
    REQUIRE(last.value("state", "") == "ready");
    return id;
  }
  // The fields of a fresh token signed with key for hw at time t.
  json fresh(const std::string& hw, const PrivateKey& key, core::TimeMs t) {
    const std::string nonce = fmt::format("nonce-{:012d}", ++nonce_counter);
    const std::string ts = core::format_rfc3339(t);
    return json{
        {"token", key.sign_base64(core::fresh_token_message(hw, ts, nonce))}, {"ts", ts}, {"nonce", nonce}};
  }

  service::InboundMessage message(const std::string& payload, const std::string& response_topic = {},
                                  std::optional<std::string> corr = std::nullopt) {
    service::InboundMessage m;
    m.payload = payload;
    m.response_topic = response_topic;
    if (corr) {
      m.correlation_data = *corr;
      m.has_correlation_data = true;
    }
    return m;
  }
  // Sends a query and returns the single answer published.
  service::OutMessage query_raw(const std::string& hw, const service::InboundMessage& m) {
    pub.sent.clear();
    prov->on_request(hw, m);
    REQUIRE(pub.sent.size() == 1);
    return pub.sent[0];
  }
  json query(const std::string& hw, json body) {
    body["correlation_id"] = "q-1";
    auto out = query_raw(hw, message(body.dump()));
    CHECK(out.topic == "esthesis/provisioning/reply/" + hw);
    auto j = json::parse(out.payload);
    CHECK(j.value("correlation_id", "") == "q-1");
    return j;
  }
  json signed_query(const std::string& hw, json body, KeyType t = KeyType::rsa) {
    body.update(fresh(hw, key_of(t), clock.now_ms()));
    return query(hw, body);
  }
  // One download request; returns (header, bytes).
  std::pair<json, std::string> download(const std::string& hw, const json& body) {
    pub.sent.clear();
    prov->on_download(hw, message(body.dump()));
    REQUIRE(pub.sent.size() == 1);
    CHECK(pub.sent[0].topic == "esthesis/provisioning/data/" + hw);
    auto f = protocol::parse_frame(pub.sent[0].payload);
    REQUIRE(f.ok());
    return {f->header, std::string(f->body)};
  }
};

std::string code_of(const json& j) { return j.contains("error") ? j["error"].value("code", "?") : ""; }

std::string bytes_of(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) % 251);
  return s;
}

}  // namespace

TEST_CASE("packages/create validates every field", "[provisioning]") {
  Fixture f;
  f.config.provisioning_max_package_bytes = 1000;
  const std::string sha(64, 'a');
  const json good{{"name", "fw"},  {"version", "1.0.0"}, {"type", "internal"},
                  {"sha256", sha}, {"size", 10},         {"available", true}};
  auto with = [&](json patch) {
    json b = good;
    for (auto& [k, v] : patch.items()) {
      if (v.is_null()) {
        b.erase(k);
      } else {
        b[k] = v;
      }
    }
    return b;
  };
  struct Case {
    const char* rule;
    json body;
    std::string code;  // "" = accepted
  } cases[] = {
      {"a valid internal package", good, ""},
      {"a valid external package",
       json{{"name", "fw"},
            {"version", "2.0.0"},
            {"type", "external"},
            {"url", "https://x.example/fw.bin"},
            {"available", true}},
       ""},
      {"name required", with({{"name", nullptr}}), "bad_request"},
      {"name not empty", with({{"name", ""}}), "bad_request"},
      {"version required", with({{"version", nullptr}}), "bad_request"},
      {"version must be SemVer", with({{"version", "1.0"}}), "bad_request"},
      {"prerequisite must be SemVer", with({{"prerequisite_version", "x"}}), "bad_request"},
      {"type required", with({{"type", nullptr}}), "bad_request"},
      {"type is internal or external", with({{"type", "ftp"}}), "bad_request"},
      {"internal needs sha256", with({{"sha256", nullptr}}), "bad_request"},
      {"sha256 is 64 lowercase hex", with({{"sha256", std::string(64, 'A')}}), "bad_request"},
      {"sha256 of the wrong length", with({{"sha256", "abc"}}), "bad_request"},
      {"internal needs size", with({{"size", nullptr}}), "bad_request"},
      {"size not negative", with({{"size", -1}}), "bad_request"},
      {"size above the limit", with({{"size", 1001}}), "too_large"},
      {"internal takes no url", with({{"url", "https://x"}}), "bad_request"},
      {"external needs a url", with({{"type", "external"}}), "bad_request"},
      {"external url must be http(s)", with({{"type", "external"}, {"url", "file:///etc/passwd"}}),
       "bad_request"},
      {"available required", with({{"available", nullptr}}), "bad_request"},
      {"tags must be ids", with({{"tags", {"a/b"}}}), "bad_request"},
      {"attributes must be strings", with({{"attributes", {{"k", 1}}}}), "bad_request"},
      {"request_id must be an id", with({{"request_id", "a b"}}), "bad_request"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      auto r = f.api("create", c.body);
      CHECK(code_of(r) == c.code);
      if (c.code.empty()) CHECK(r.contains("id"));
    }
  }
}

TEST_CASE("packages get, list, update, delete and request_id idempotency", "[provisioning]") {
  Fixture f;
  const std::string data = bytes_of(100);
  json body{{"name", "fw"}, {"version", "v1.2.3"}, {"type", "internal"}, {"sha256", core::sha256_hex(data)},
            {"size", 100},  {"available", true},   {"tags", {"b", "a"}}, {"request_id", "r-1"}};
  auto first = f.api("create", body);
  REQUIRE(first.contains("id"));
  const std::string id = first["id"];
  CHECK(f.api("create", body) == first);
  body["name"] = "other";
  CHECK(code_of(f.api("create", body)) == "conflict");

  auto got = f.api("get", {{"id", id}});
  CHECK(got["version"] == "1.2.3");
  CHECK(got["state"] == "pending_upload");
  CHECK(got["received"] == 0);
  CHECK(got["tags"] == json({"a", "b"}));
  REQUIRE(f.upload(id, 0, std::string_view(data).substr(0, 40)).value("received", -1) == 40);
  CHECK(f.api("get", {{"id", id}})["received"] == 40);

  auto listed = f.api("list", {{"tag", "a"}});
  REQUIRE(listed["packages"].size() == 1);
  CHECK(f.api("list", {{"tag", "zzz"}})["packages"].empty());

  auto updated = f.api("update", {{"id", id}, {"available", false}, {"tags", {"c"}}});
  CHECK(updated["available"] == false);
  CHECK(updated["tags"] == json({"c"}));
  CHECK(code_of(f.api("update", {{"id", id}})) == "bad_request");
  CHECK(code_of(f.api("get", {{"id", "nope"}})) == "not_found");
  CHECK(code_of(f.api("frobnicate", {{"id", id}})) == "not_found");

  CHECK(f.api("delete", {{"id", id}})["deleted"] == true);
  CHECK_FALSE(std::filesystem::exists(f.config.storage_data_dir + "/" + id + ".part"));
  CHECK(code_of(f.api("get", {{"id", id}})) == "not_found");
  CHECK(code_of(f.api("delete", {{"id", id}})) == "not_found");
}

TEST_CASE("upload: any order, idempotent per offset, verified before it is ready", "[provisioning]") {
  Fixture f;
  const std::string data = bytes_of(1000);
  auto create = [&](const std::string& sha) {
    auto r = f.api("create", {{"name", "fw"},
                              {"version", "1.0.0"},
                              {"type", "internal"},
                              {"sha256", sha},
                              {"size", 1000},
                              {"available", true}});
    REQUIRE(r.contains("id"));
    return r["id"].get<std::string>();
  };

  SECTION("out of order with a re-sent chunk becomes ready, file moved into place") {
    const std::string id = create(core::sha256_hex(data));
    CHECK(f.upload(id, 600, data.substr(600, 400))["received"] == 400);
    CHECK(f.upload(id, 600, data.substr(600, 400))["received"] == 400);  // idempotent per offset
    CHECK(f.upload(id, 0, data.substr(0, 300))["received"] == 700);
    auto done = f.upload(id, 300, data.substr(300, 300));
    CHECK(done["state"] == "ready");
    CHECK(done["received"] == 1000);
    CHECK(testing::read_file(f.config.storage_data_dir + "/" + id + ".bin") == data);
    CHECK_FALSE(std::filesystem::exists(f.config.storage_data_dir + "/" + id + ".part"));
    CHECK(f.api("get", {{"id", id}})["state"] == "ready");
    CHECK(f.upload(id, 0, data.substr(0, 10), true)["state"] == "ready");  // a late re-send is harmless
  }
  SECTION("a digest mismatch is refused and the package stays pending") {
    const std::string id = create(core::sha256_hex("something else"));
    auto r = f.upload(id, 0, data, true);
    CHECK(code_of(r) == "bad_request");
    auto got = f.api("get", {{"id", id}});
    CHECK(got["state"] == "pending_upload");
    CHECK(got["received"] == 0);
    CHECK_FALSE(std::filesystem::exists(f.config.storage_data_dir + "/" + id + ".bin"));
  }
  SECTION("last with missing bytes is refused and resumable") {
    const std::string id = create(core::sha256_hex(data));
    CHECK(code_of(f.upload(id, 500, data.substr(500), true)) == "bad_request");
    CHECK(f.upload(id, 0, data.substr(0, 500), true)["state"] == "ready");
  }
  SECTION("frame errors") {
    const std::string id = create(core::sha256_hex(data));
    struct Case {
      const char* rule;
      json header;
      std::string bytes;
      std::string code;
    } cases[] = {
        {"chunk beyond the size", {{"id", id}, {"offset", 900}}, std::string(200, 'x'), "bad_request"},
        {"negative offset", {{"id", id}, {"offset", -1}}, "x", "bad_request"},
        {"missing offset", {{"id", id}}, "x", "bad_request"},
        {"unknown package", {{"id", "nope"}, {"offset", 0}}, "x", "not_found"},
        {"chunk above the chunk limit",
         {{"id", id}, {"offset", 0}},
         std::string(static_cast<std::size_t>(f.config.provisioning_max_chunk_bytes) + 1, 'x'),
         "too_large"},
    };
    for (const auto& c : cases) {
      auto r = f.prov->upload(c.header, c.bytes);
      REQUIRE_FALSE(r.ok());
      CHECK(std::string(core::to_string(r.error().code)) == c.code);
    }
  }
  SECTION("an external package takes no upload") {
    auto r = f.api("create", {{"name", "fw"},
                              {"version", "1.0.0"},
                              {"type", "external"},
                              {"url", "https://x/y"},
                              {"available", true}});
    CHECK(code_of(f.upload(r["id"], 0, "x")) == "conflict");
  }
}

TEST_CASE("fresh token verification per key type", "[provisioning][token]") {
  Fixture f;
  f.config.provisioning_rate_limit = 1000;
  f.open(":memory:");  // the limit is read when the service starts
  f.add_package("2.0.0", bytes_of(10));
  for (KeyType t : {KeyType::rsa, KeyType::ec_p256, KeyType::ed25519}) {
    const std::string hw = std::string("dev-") + std::string(core::to_string(t));
    f.add_device(hw, t);
    const PrivateKey& key = key_of(t);
    const PrivateKey& other = key_of(t == KeyType::rsa ? KeyType::ed25519 : KeyType::rsa);
    const PrivateKey wrong = PrivateKey::generate(t);
    const core::TimeMs now = f.clock.now_ms();
    auto token_for = [&](const PrivateKey& k, const std::string& signed_hw, const std::string& ts,
                         const std::string& nonce) {
      return k.sign_base64(core::fresh_token_message(signed_hw, ts, nonce));
    };
    const std::string ts = core::format_rfc3339(now);
    const std::string good = token_for(key, hw, ts, "nonce-good-00000001");
    struct Case {
      const char* rule;
      std::string token;
      std::string ts;
      std::string nonce;
      std::string code;  // "" = an update is offered
    } cases[] = {
        {"good signature", good, ts, "nonce-good-00000001", ""},
        {"replayed nonce", good, ts, "nonce-good-00000001", "unauthorized"},
        {"wrong key of the same type", token_for(wrong, hw, ts, "nonce-aaaaaaaaaaa2"), ts,
         "nonce-aaaaaaaaaaa2", "unauthorized"},
        {"signature of another device's id", token_for(key, "dev-other", ts, "nonce-aaaaaaaaaaa3"), ts,
         "nonce-aaaaaaaaaaa3", "unauthorized"},
        {"tampered message (other nonce)", token_for(key, hw, ts, "nonce-aaaaaaaaaaa4"), ts,
         "nonce-aaaaaaaaaaa5", "unauthorized"},
        {"truncated signature", good.substr(0, good.size() - 8), ts, "nonce-aaaaaaaaaaa6", "unauthorized"},
        {"bad base64", "!!!not-base64!!!", ts, "nonce-aaaaaaaaaaa7", "unauthorized"},
        {"signature by another key type", token_for(other, hw, ts, "nonce-aaaaaaaaaaa8"), ts,
         "nonce-aaaaaaaaaaa8", "unauthorized"},
        {"static token refused in fresh mode", key.sign_base64(hw), "", "", "bad_request"},
        {"nonce too short", token_for(key, hw, ts, "short"), ts, "short", "bad_request"},
        {"nonce with a character outside Base64", token_for(key, hw, ts, "nonce.aaaaaaaaaaaa"), ts,
         "nonce.aaaaaaaaaaaa", "bad_request"},
        {"ts not RFC 3339", good, "yesterday", "nonce-aaaaaaaaaaa9", "bad_request"},
    };
    for (const auto& c : cases) {
      INFO(hw << ": " << c.rule);
      json body{{"version", "1.0.0"}, {"token", c.token}};
      if (!c.ts.empty()) body["ts"] = c.ts;
      if (!c.nonce.empty()) body["nonce"] = c.nonce;
      auto r = f.query(hw, body);
      CHECK(code_of(r) == c.code);
      if (c.code.empty()) CHECK(r["status"] == "update");
      if (c.code == "unauthorized" && std::string(c.rule) != "replayed nonce")
        CHECK(r["error"]["message"] == "unauthorized");
    }
  }
}

TEST_CASE("fresh token time window boundaries", "[provisioning][token]") {
  Fixture f;
  f.add_device("dev-1");
  struct Case {
    const char* rule;
    core::TimeMs offset_ms;
    std::string code;
  } cases[] = {
      {"exactly -window accepted", -300'000, ""},
      {"exactly +window accepted", 300'000, ""},
      {"one second beyond -window refused", -301'000, "unauthorized"},
      {"one second beyond +window refused", 301'000, "unauthorized"},
      {"now accepted", 0, ""},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      auto body = f.fresh("dev-1", key_of(KeyType::rsa), f.clock.now_ms() + c.offset_ms);
      body["version"] = "1.0.0";
      auto r = f.query("dev-1", body);
      CHECK(code_of(r) == c.code);
      if (c.code.empty()) CHECK(r["status"] == "up_to_date");
    }
  }
}

TEST_CASE("unknown device and bad signature answer identically", "[provisioning][token]") {
  Fixture f;
  f.add_device("dev-1");
  auto unknown = f.signed_query("dev-unknown", {{"version", "1.0.0"}});
  json bad = f.fresh("dev-1", key_of(KeyType::ed25519), f.clock.now_ms());
  bad["version"] = "1.0.0";
  auto bad_sig = f.query("dev-1", bad);
  CHECK(unknown == bad_sig);
  CHECK(unknown["error"] == json({{"code", "unauthorized"}, {"message", "unauthorized"}}));
}

TEST_CASE("token modes any and off", "[provisioning][token]") {
  Fixture f;
  SECTION("any accepts a static signature over the hardware id, and fresh ones") {
    f.config.provisioning_token = service::TokenMode::any;
    f.add_device("dev-1");
    auto r = f.query("dev-1", {{"version", "1.0.0"}, {"token", key_of(KeyType::rsa).sign_base64("dev-1")}});
    CHECK(r["status"] == "up_to_date");
    CHECK(f.signed_query("dev-1", {{"version", "1.0.0"}})["status"] == "up_to_date");
    CHECK(code_of(f.query("dev-1",
                          {{"version", "1.0.0"}, {"token", key_of(KeyType::rsa).sign_base64("dev-2")}})) ==
          "unauthorized");
  }
  SECTION("off needs no token but still a known device") {
    f.config.provisioning_token = service::TokenMode::off;
    f.add_device("dev-1");
    CHECK(f.query("dev-1", {{"version", "1.0.0"}})["status"] == "up_to_date");
    CHECK(code_of(f.query("dev-2", {{"version", "1.0.0"}})) == "unauthorized");
  }
}

TEST_CASE("rate limit: exact sliding window, counted before crypto, kept across restarts",
          "[provisioning][rate]") {
  Fixture f(true);
  f.add_device("dev-1");
  SECTION("5 pass, the 6th is refused with retry_after_s") {
    for (int i = 0; i < 5; ++i)
      CHECK(f.signed_query("dev-1", {{"version", "1.0.0"}})["status"] == "up_to_date");
    f.clock.advance_s(100);
    auto r = f.signed_query("dev-1", {{"version", "1.0.0"}});
    CHECK(code_of(r) == "rate_limited");
    CHECK(r["error"]["retry_after_s"] == 200);
  }
  SECTION("malformed and unknown-device queries count too") {
    for (int i = 0; i < 5; ++i) CHECK(code_of(f.query("dev-1", {{"version", "x"}})) == "bad_request");
    CHECK(code_of(f.signed_query("dev-1", {{"version", "1.0.0"}})) == "rate_limited");
    for (int i = 0; i < 5; ++i)
      CHECK(code_of(f.signed_query("dev-x", {{"version", "1.0.0"}})) == "unauthorized");
    CHECK(code_of(f.signed_query("dev-x", {{"version", "1.0.0"}})) == "rate_limited");
  }
  SECTION("boundary at exactly 300 s") {
    for (int i = 0; i < 5; ++i)
      CHECK(f.signed_query("dev-1", {{"version", "1.0.0"}})["status"] == "up_to_date");
    f.clock.advance_ms(299'999);
    auto refused = f.signed_query("dev-1", {{"version", "1.0.0"}});
    CHECK(code_of(refused) == "rate_limited");
    CHECK(refused["error"]["retry_after_s"] == 1);
    f.clock.advance_ms(1);
    // The 5 first events left the window; the refused one still counts: 4 more pass, then refused.
    for (int i = 0; i < 4; ++i)
      CHECK(f.signed_query("dev-1", {{"version", "1.0.0"}})["status"] == "up_to_date");
    CHECK(code_of(f.signed_query("dev-1", {{"version", "1.0.0"}})) == "rate_limited");
  }
  SECTION("a restart keeps the counts") {
    for (int i = 0; i < 5; ++i)
      CHECK(f.signed_query("dev-1", {{"version", "1.0.0"}})["status"] == "up_to_date");
    f.open(f.dir.path() + "/dispatch.db");
    CHECK(code_of(f.signed_query("dev-1", {{"version", "1.0.0"}})) == "rate_limited");
  }
  SECTION("the stored events stay within limit + 1 per device, and expired ones go") {
    auto stored = [&] {
      auto q = f.db->prepare("SELECT count(*) FROM rate_events WHERE key = 'prov:dev-1'");
      REQUIRE(q->executeStep());
      return q->getColumn(0).getInt();
    };
    for (int i = 0; i < 5; ++i)
      CHECK(f.signed_query("dev-1", {{"version", "1.0.0"}})["status"] == "up_to_date");
    CHECK(stored() == 5);
    for (int i = 0; i < 20; ++i) {
      f.clock.advance_ms(1);  // events tied in time with the oldest kept one would stay too
      CHECK(code_of(f.signed_query("dev-1", {{"version", "1.0.0"}})) == "rate_limited");
    }
    CHECK(stored() == 6);
    // A whole window later the next (allowed) query drops every expired event: only itself stays.
    f.clock.advance_s(301);
    CHECK(f.signed_query("dev-1", {{"version", "1.0.0"}})["status"] == "up_to_date");
    CHECK(stored() == 1);
  }
  SECTION("each device has its own window") {
    f.add_device("dev-2");
    for (int i = 0; i < 5; ++i)
      CHECK(f.signed_query("dev-1", {{"version", "1.0.0"}})["status"] == "up_to_date");
    CHECK(f.signed_query("dev-2", {{"version", "1.0.0"}})["status"] == "up_to_date");
  }
}

TEST_CASE("a nonce stays refused across a restart", "[provisioning][token]") {
  Fixture f(true);
  f.add_device("dev-1");
  json body = f.fresh("dev-1", key_of(KeyType::rsa), f.clock.now_ms());
  body["version"] = "1.0.0";
  CHECK(f.query("dev-1", body)["status"] == "up_to_date");
  f.open(f.dir.path() + "/dispatch.db");
  CHECK(code_of(f.query("dev-1", body)) == "unauthorized");
}

TEST_CASE("query answers: selection, package_id, external url", "[provisioning]") {
  Fixture f;
  f.add_device("dev-1", KeyType::rsa, {"lab"});
  const std::string v1 = f.add_package("1.0.0", bytes_of(10));
  const std::string v2 = f.add_package("1.5.0", bytes_of(20));
  const std::string v3 = f.add_package("2.0.0", bytes_of(30), {{"prerequisite_version", "1.5.0"}});
  const std::string prod = f.add_package("9.0.0", bytes_of(5), {{"tags", {"prod"}}});

  auto a = f.signed_query("dev-1", {{"version", "1.0.0"}});
  CHECK(a["status"] == "update");
  CHECK(a["package"]["id"] == v2);
  CHECK(a["package"]["type"] == "internal");
  CHECK(a["package"]["size"] == 20);
  CHECK(a["package"]["sha256"] == core::sha256_hex(bytes_of(20)));
  CHECK(a["package"]["download_token"].get<std::string>().size() == 54);  // Base64url of 40 bytes
  CHECK(a["package"]["expires_at"] == core::format_rfc3339(f.clock.now_ms() + 3600'000));
  CHECK(f.signed_query("dev-1", {{"version", "1.5.0"}})["package"]["id"] == v3);
  CHECK(f.signed_query("dev-1", {{"version", "2.0.0"}})["status"] == "up_to_date");
  f.clock.advance_s(300);

  CHECK(f.signed_query("dev-1", {{"package_id", v1}})["package"]["id"] == v1);  // downgrade by id
  CHECK(code_of(f.signed_query("dev-1", {{"package_id", prod}})) == "not_found");
  CHECK(code_of(f.signed_query("dev-1", {{"package_id", "nope"}})) == "not_found");
  CHECK(code_of(f.signed_query("dev-1", {})) == "bad_request");  // no version known

  auto ext = f.api("create", {{"name", "fw"},
                              {"version", "3.0.0"},
                              {"type", "external"},
                              {"url", "https://cdn.example/fw-3.bin"},
                              {"available", true}});
  auto e = f.signed_query("dev-1", {{"version", "2.0.0"}});
  CHECK(e["package"]["id"] == ext["id"]);
  CHECK(e["package"]["url"] == "https://cdn.example/fw-3.bin");
  CHECK_FALSE(e["package"].contains("download_token"));
}

TEST_CASE("answers go to the device's own topics, correlation is echoed", "[provisioning]") {
  Fixture f;
  f.add_device("dev-1");
  struct Case {
    const char* rule;
    std::string response_topic;
    std::string expected_topic;
  } cases[] = {
      {"no response topic", "", "esthesis/provisioning/reply/dev-1"},
      {"own reply topic", "esthesis/provisioning/reply/dev-1", "esthesis/provisioning/reply/dev-1"},
      {"below own reply topic", "esthesis/provisioning/reply/dev-1/x", "esthesis/provisioning/reply/dev-1/x"},
      {"another device's topic", "esthesis/provisioning/reply/dev-2", "esthesis/provisioning/reply/dev-1"},
      {"a command topic", "esthesis/command/request/dev-1", "esthesis/provisioning/reply/dev-1"},
      {"a wildcard", "esthesis/provisioning/reply/+", "esthesis/provisioning/reply/dev-1"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      json body = f.fresh("dev-1", key_of(KeyType::rsa), f.clock.now_ms());
      body["version"] = "1.0.0";
      body["correlation_id"] = "q-7";
      auto out = f.query_raw("dev-1", f.message(body.dump(), c.response_topic, std::string("\x01\x02", 2)));
      CHECK(out.topic == c.expected_topic);
      CHECK(out.has_correlation_data);
      CHECK(out.correlation_data == std::string("\x01\x02", 2));
      CHECK(json::parse(out.payload)["correlation_id"] == "q-7");
    }
  }
}

TEST_CASE("malformed device requests are answered with an error, never dropped", "[provisioning]") {
  Fixture f;
  f.add_device("dev-1");
  struct Case {
    const char* rule;
    std::string payload;
    std::string code;
  } cases[] = {
      {"not JSON", "{nope", "bad_request"},
      {"not an object", "[1,2]", "bad_request"},
      {"empty", "", "bad_request"},
      {"invalid UTF-8", "{\"version\":\"\xff\"}", "bad_request"},
      {"version of the wrong type", R"({"version":1,"correlation_id":"c"})", "bad_request"},
      {"invalid version", R"({"version":"1.0","correlation_id":"c"})", "bad_request"},
      {"missing token", R"({"version":"1.0.0","correlation_id":"c"})", "bad_request"},
      {"package_id with a slash", R"({"package_id":"a/b","token":"x","correlation_id":"c"})", "bad_request"},
      {"too deep", std::string(100, '[') + std::string(100, ']'), "bad_request"},
      {"too large", std::string(300 * 1024, ' '), "too_large"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      auto req = f.query_raw("dev-1", f.message(c.payload, {}, "corr"));
      CHECK(req.topic == "esthesis/provisioning/reply/dev-1");
      CHECK(req.correlation_data == "corr");
      CHECK(code_of(json::parse(req.payload)) == c.code);
      f.pub.sent.clear();
      f.prov->on_download("dev-1", f.message(c.payload, {}, "corr"));
      REQUIRE(f.pub.sent.size() == 1);
      CHECK(f.pub.sent[0].topic == "esthesis/provisioning/data/dev-1");
      auto frame = protocol::parse_frame(f.pub.sent[0].payload);
      REQUIRE(frame.ok());
      CHECK(frame->header["error"]["code"] == c.code);
    }
  }
}

TEST_CASE("download tokens: chunked, single use, bound, expiring", "[provisioning][download]") {
  Fixture f;
  f.config.provisioning_max_chunk_bytes = 100;
  f.add_device("dev-1");
  f.add_device("dev-2");
  const std::string data = bytes_of(250);
  const std::string id = f.add_package("2.0.0", data);
  auto token_for = [&](const std::string& hw) {
    auto a = f.signed_query(hw, {{"version", "1.0.0"}});
    REQUIRE(a["status"] == "update");
    return a["package"]["download_token"].get<std::string>();
  };
  auto req = [](const std::string& token, std::int64_t offset, std::int64_t length) {
    return json{{"download_token", token}, {"offset", offset}, {"length", length}, {"correlation_id", "d-1"}};
  };

  SECTION("resume in any order until every byte was served, then spent") {
    const std::string token = token_for("dev-1");
    std::string got(250, '?');
    for (std::int64_t off : {200, 0, 0, 100}) {
      auto [h, bytes] = f.download("dev-1", req(token, off, 100));
      REQUIRE_FALSE(h.contains("error"));
      CHECK(h["correlation_id"] == "d-1");
      CHECK(h["offset"] == off);
      CHECK(h["total"] == 250);
      CHECK(h["sha256"] == core::sha256_hex(data));
      CHECK(h["length"] == bytes.size());
      CHECK(h["last"] == (off == 200));
      got.replace(static_cast<std::size_t>(off), bytes.size(), bytes);
    }
    CHECK(got == data);
    CHECK(f.download("dev-1", req(token, 0, 100)).first["error"]["code"] == "token_invalid");
  }
  SECTION("refusals") {
    const std::string token = token_for("dev-1");
    struct Case {
      const char* rule;
      std::string hw;
      json body;
      std::string code;
    } cases[] = {
        {"another device's token", "dev-2", req(token, 0, 100), "token_invalid"},
        {"unknown token", "dev-1", req("x" + token, 0, 100), "token_invalid"},
        {"length above the chunk limit", "dev-1", req(token, 0, 101), "bad_request"},
        {"length zero", "dev-1", req(token, 0, 0), "bad_request"},
        {"offset beyond the end", "dev-1", req(token, 250, 10), "bad_request"},
        {"negative offset", "dev-1", req(token, -1, 10), "bad_request"},
        {"missing token", "dev-1", json{{"offset", 0}, {"length", 10}}, "bad_request"},
    };
    for (const auto& c : cases) {
      INFO(c.rule);
      CHECK(f.download(c.hw, c.body).first["error"]["code"] == c.code);
    }
    CHECK(f.download("dev-1", req(token, 0, 100)).second ==
          data.substr(0, 100));  // still valid for its owner
  }
  SECTION("expired after the TTL") {
    const std::string token = token_for("dev-1");
    f.clock.advance_s(3599);
    CHECK_FALSE(f.download("dev-1", req(token, 0, 100)).first.contains("error"));
    f.clock.advance_s(1);
    CHECK(f.download("dev-1", req(token, 100, 100)).first["error"]["code"] == "token_invalid");
  }
  SECTION("deleting the package removes its unspent tokens and file") {
    const std::string token = token_for("dev-1");
    CHECK(f.api("delete", {{"id", id}})["deleted"] == true);
    CHECK_FALSE(std::filesystem::exists(f.config.storage_data_dir + "/" + id + ".bin"));
    CHECK(f.download("dev-1", req(token, 0, 100)).first["error"]["code"] == "token_invalid");
  }
}

TEST_CASE("two racing first uses of a download token: exactly one wins", "[provisioning][download]") {
  Fixture f(true);
  f.add_device("dev-1");
  const std::string data = bytes_of(64);
  f.add_package("2.0.0", data);
  auto a = f.signed_query("dev-1", {{"version", "1.0.0"}});
  const std::string token = a["package"]["download_token"];
  const std::string body = json{{"download_token", token}, {"offset", 0}, {"length", 64}}.dump();

  // Two service instances on their own connections to the same file, as two racing threads.
  struct Side {
    std::unique_ptr<storage::Database> db;
    service::RecordingPublisher pub;
    service::BatchEffects effects;
    std::unique_ptr<service::Provisioning> prov;
  };
  Side sides[2];
  for (auto& s : sides) {
    auto d = storage::Database::open(f.dir.path() + "/dispatch.db");
    REQUIRE(d.ok());
    s.db = std::move(d).value();
    s.prov = std::make_unique<service::Provisioning>(f.config, f.clock, *s.db, s.pub, f.topics, s.effects);
  }
  std::thread t0([&] { sides[0].prov->on_download("dev-1", f.message(body)); });
  std::thread t1([&] { sides[1].prov->on_download("dev-1", f.message(body)); });
  t0.join();
  t1.join();
  int winners = 0, invalid = 0;
  for (auto& s : sides) {
    REQUIRE(s.pub.sent.size() == 1);
    auto frame = protocol::parse_frame(s.pub.sent[0].payload);
    REQUIRE(frame.ok());
    if (frame->header.contains("error")) {
      invalid += frame->header["error"]["code"] == "token_invalid";
    } else {
      winners += frame->body == data;
    }
  }
  CHECK(winners == 1);
  CHECK(invalid == 1);
}

// ---- issue 15 -----------------------------------------------------------------------------------------

TEST_CASE("one download token pulls at most max_download_factor x the package size",
          "[provisioning][download][issue15]") {
  Fixture f;
  f.config.provisioning_max_chunk_bytes = 100;
  f.config.provisioning_max_download_factor = 3;
  f.open(":memory:");
  f.add_device("dev-1");
  const std::string data = bytes_of(250);
  f.add_package("2.0.0", data);
  auto a = f.signed_query("dev-1", {{"version", "1.0.0"}});
  const std::string token = a["package"]["download_token"];
  auto req = [&](std::int64_t offset) {
    return json{{"download_token", token}, {"offset", offset}, {"length", 100}, {"correlation_id", "d-1"}};
  };
  // Chunk 0 again and again: 7 × 100 bytes fit in 3 × 250 = 750, the 8th would not.
  for (int i = 0; i < 7; ++i) {
    auto [h, bytes] = f.download("dev-1", req(0));
    REQUIRE_FALSE(h.contains("error"));
    CHECK(bytes == data.substr(0, 100));
  }
  auto [refused, none] = f.download("dev-1", req(0));
  CHECK(refused["error"]["code"] == "token_invalid");
  CHECK(refused["error"]["message"].get<std::string>().rfind("download token exhausted", 0) == 0);
  CHECK(refused["correlation_id"] == "d-1");
  CHECK(none.empty());
  // Spent: even the bytes never served are refused now; a new query gives a new token.
  CHECK(f.download("dev-1", req(100)).first["error"]["code"] == "token_invalid");
  CHECK(f.download("dev-1", req(200)).first["error"]["message"] ==
        "download token is invalid, spent or expired");
}

TEST_CASE("an upload offset near 2^63 is bad_request and names no path", "[provisioning][upload][issue15]") {
  Fixture f;
  auto created = f.api("create", {{"name", "fw"},
                                  {"version", "1.0.0"},
                                  {"type", "internal"},
                                  {"sha256", core::sha256_hex("abcd")},
                                  {"size", 4},
                                  {"available", true}});
  const std::string id = created["id"];
  for (std::int64_t offset :
       {std::numeric_limits<std::int64_t>::max() - 1, std::numeric_limits<std::int64_t>::max(),
        std::int64_t{1} << 62, std::int64_t{5}}) {
    INFO(offset);
    auto r = f.upload(id, offset, "ab");
    CHECK(code_of(r) == "bad_request");
    const std::string message = r["error"]["message"];
    CHECK(message.find(f.config.storage_data_dir) == std::string::npos);
    CHECK(message.find("lies beyond the package size 4") != std::string::npos);
  }
  CHECK(f.upload(id, 0, "abcd")["state"] == "ready");
}

TEST_CASE("start-up cleanup touches only files of packages the database knows", "[provisioning][issue15]") {
  Fixture f(true);
  const std::string dir = f.config.storage_data_dir;
  const std::string ready = f.add_package("1.0.0", "abcd");
  auto created = f.api("create", {{"name", "fw"},
                                  {"version", "2.0.0"},
                                  {"type", "internal"},
                                  {"sha256", core::sha256_hex("efgh")},
                                  {"size", 4},
                                  {"available", true}});
  const std::string pending = created["id"];
  REQUIRE(f.upload(pending, 0, "ef")["state"] == "pending_upload");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::FILE* fp = std::fopen((dir + "/" + name).c_str(), "wb");
    REQUIRE(fp);
    std::fwrite(bytes.data(), 1, bytes.size(), fp);
    std::fclose(fp);
  };
  write("firmware.bin", "someone else's");
  write("backup.part", "someone else's");
  write("01JUNKNOWN0000000000000000.bin", "unknown id");
  write(ready + ".part", "stale upload of a ready package");
  f.open(f.dir.path() + "/dispatch.db");  // restart: start() runs the cleanup

  CHECK(std::filesystem::exists(dir + "/firmware.bin"));
  CHECK(std::filesystem::exists(dir + "/backup.part"));
  CHECK(std::filesystem::exists(dir + "/01JUNKNOWN0000000000000000.bin"));
  CHECK_FALSE(std::filesystem::exists(dir + "/" + ready + ".part"));
  CHECK(testing::read_file(dir + "/" + ready + ".bin") == "abcd");
  CHECK(testing::read_file(dir + "/" + pending + ".part").substr(0, 2) == "ef");
  CHECK(f.upload(pending, 2, "gh", true)["state"] == "ready");
}

TEST_CASE("nonces: 16 to 64 characters of the Base64 alphabets, never twice",
          "[provisioning][token][issue15]") {
  Fixture f;
  f.add_device("dev-1");
  f.add_package("2.0.0", "abcd");
  auto with_nonce = [&](const std::string& nonce) {
    const std::string ts = core::format_rfc3339(f.clock.now_ms());
    json body{{"version", "1.0.0"},
              {"ts", ts},
              {"nonce", nonce},
              {"token", key_of(KeyType::rsa).sign_base64(core::fresh_token_message("dev-1", ts, nonce))}};
    return f.query("dev-1", body);
  };
  CHECK(with_nonce("q83vEjRWeJq8/+7/AAEC==")["status"] == "update");       // standard Base64 with padding
  CHECK(code_of(with_nonce("q83vEjRWeJq8/+7/AAEC==")) == "unauthorized");  // replayed
  f.clock.advance_s(300);
  CHECK(with_nonce("abcdefghijklmnop")["status"] == "update");  // URL-safe alphabet, 16 chars
  f.clock.advance_s(300);
  CHECK(code_of(with_nonce("abcdefghijklmno")) == "bad_request");   // 15 chars
  CHECK(code_of(with_nonce("abcdefghijklmno!")) == "bad_request");  // not Base64
}

TEST_CASE("an oversize query counts in the rate window", "[provisioning][issue15]") {
  Fixture f;
  f.add_device("dev-1");
  const std::string big(5000, 'x');
  auto m = f.message(big, {}, std::string("corr-1"));
  for (int i = 0; i < 5; ++i) {
    f.pub.sent.clear();
    f.prov->on_oversize_request("dev-1", m, 4096);
    REQUIRE(f.pub.sent.size() == 1);
    CHECK(f.pub.sent[0].topic == "esthesis/provisioning/reply/dev-1");
    CHECK(f.pub.sent[0].correlation_data == "corr-1");
    auto j = json::parse(f.pub.sent[0].payload);
    CHECK(j["error"]["code"] == "too_large");
    CHECK(j["error"]["message"] == "message of 5000 bytes exceeds the limit of 4096 bytes");
  }
  f.pub.sent.clear();
  f.prov->on_oversize_request("dev-1", m, 4096);
  REQUIRE(f.pub.sent.size() == 1);
  auto limited = json::parse(f.pub.sent[0].payload);
  CHECK(limited["error"]["code"] == "rate_limited");
  CHECK(limited["error"]["retry_after_s"] == 300);
  // …and a well-formed query right after is refused by the same window.
  CHECK(code_of(f.signed_query("dev-1", {{"version", "1.0.0"}})) == "rate_limited");
}
