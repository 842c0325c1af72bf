// Provisioning (PROTOCOL §2, §3 packages). Everything runs on the service loop thread; each device query
// is one write transaction so that its rate-limit event, its nonce and its download token are committed
// together (one fsync per query) and survive a restart.
#include "service/provisioning.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <unordered_map>

#include "protocol/core/package_selection.h"
#include "protocol/core/rate_limiter.h"
#include "protocol/core/secrets.h"
#include "protocol/core/semver.h"
#include "protocol/core/signature.h"
#include "protocol/core/time.h"
#include "protocol/errors.h"
#include "protocol/frame.h"
#include "protocol/ids.h"
#include "protocol/json_request.h"
#include "service/api_util.h"
#include "service/failpoint.h"
#include "storage/database.h"
#include "storage/devices.h"
#include "storage/idempotency.h"
#include "storage/nonces.h"
#include "storage/packages.h"
#include "storage/rate_windows.h"
#include "storage/tokens.h"

namespace dispatch::service {

using core::Error;
using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using Json = nlohmann::json;

namespace {

constexpr std::string_view k_unauthorized = "unauthorized";
constexpr std::string_view k_token_invalid = "download token is invalid, spent or expired";
constexpr core::TimeMs k_prune_period_ms = 10'000;
constexpr int k_list_page = 1000;
constexpr std::size_t k_hash_block = 1 << 20;

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

Error io_error(std::string_view what, const std::string& path) {
  // The path is ours (data dir + service-minted id); errno text helps the operator.
  return make_error(ErrorCode::unavailable, fmt::format("{} {}: {}", what, path, std::strerror(errno)));
}

Status fsync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.ok()) return io_error("cannot open directory", dir);
  if (::fsync(fd.get()) != 0) return io_error("cannot fsync directory", dir);
  return {};
}

bool is_lower_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool valid_nonce(std::string_view s) {
  return s.size() >= 16 && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-';
         });
}

// http(s) only, no whitespace or control characters, bounded length.
bool valid_url(std::string_view url) {
  const bool scheme = url.rfind("https://", 0) == 0 || url.rfind("http://", 0) == 0;
  const auto prefix = url.rfind("https://", 0) == 0 ? 8u : 7u;
  return scheme && url.size() > prefix && url.size() <= 2048 &&
         std::all_of(url.begin(), url.end(),
                     [](char c) { return static_cast<unsigned char>(c) > 0x20 && c != 0x7f; });
}

// Distinct bytes covered by the chunk records (they may overlap when a sender changes chunk sizes).
std::int64_t covered_bytes(std::vector<storage::ChunkRow> chunks) {
  std::sort(chunks.begin(), chunks.end(), [](const auto& a, const auto& b) { return a.offset < b.offset; });
  std::int64_t total = 0, end = 0;
  for (const auto& c : chunks) {
    const std::int64_t s = std::max(c.offset, end), e = c.offset + c.length;
    if (e > s) {
      total += e - s;
      end = e;
    }
  }
  return total;
}

std::optional<std::string> correlation_of(const Result<Json>& body) {
  if (!body) return std::nullopt;
  auto it = body->find("correlation_id");
  if (it == body->end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// The key used for unknown devices, so that their refusal costs the same RSA verification as a bad
// signature of a registered device (no enumeration by timing).
const core::PublicKey& decoy_key() {
  static const core::PublicKey key = core::PrivateKey::generate(core::KeyType::rsa).public_key();
  return key;
}

}  // namespace

struct Provisioning::Impl {
  Impl(const Config& c, core::Clock& clk, storage::Database& d, Publisher& p, const protocol::Topics& t)
      : config(c),
        clock(clk),
        db(d),
        publisher(p),
        topics(t),
        packages(d),
        tokens(d),
        rate(d, std::max(c.provisioning_rate_limit, 0) + 1),
        nonces(d),
        devices(d),
        idempotency(d),
        limiter(clk, c.provisioning_rate_limit, c.provisioning_rate_window_s * 1000,
                static_cast<std::size_t>(c.provisioning_max_tracked_devices)) {
    limits.max_bytes = static_cast<std::size_t>(c.api_max_request_bytes);
    limits.max_depth = c.api_max_depth;
  }

  const Config& config;
  core::Clock& clock;
  storage::Database& db;
  Publisher& publisher;
  const protocol::Topics& topics;
  storage::PackageStore packages;
  storage::TokenStore tokens;
  storage::RateWindowStore rate;
  storage::NonceStore nonces;
  storage::DeviceStore devices;
  storage::IdempotencyStore idempotency;
  // The rate limit decides from memory; every event is also written to rate_events (in the query's
  // transaction), and a device the limiter does not hold is restored from there first, so a restart
  // or an eviction loses nothing. Memory is bounded by provisioning.max_tracked_devices devices (least
  // recently seen go).
  core::SlidingWindowLimiter limiter;
  protocol::JsonLimits limits;
  core::TimeMs last_prune = 0;
  // What the current batch did, for the failpoints that sit after its commit (after_commit()).
  bool batch_issued_token = false;
  bool batch_spent_token = false;
  bool batch_finished_upload = false;

  // Parsed device keys by hardware id, each with the PEM it came from (a re-registered key misses and
  // replaces its entry). OpenSSL's PEM decoding costs several times the RSA verification itself.
  struct ParsedKey {
    std::string pem;
    core::PublicKey key;
  };
  static constexpr std::size_t k_key_cache_size = 16384;
  std::unordered_map<std::string, ParsedKey> keys;

  // The available packages and their selection candidates, read once and kept until a package changes
  // (every change goes through api() or upload(), which drop it). Null when not loaded.
  struct Offered {
    std::vector<storage::PackageRow> rows;
    std::vector<core::PackageCandidate> candidates;
  };
  std::optional<Offered> offered;

  std::string part_path(const std::string& id) const { return config.storage_data_dir + "/" + id + ".part"; }
  std::string bin_path(const std::string& id) const { return config.storage_data_dir + "/" + id + ".bin"; }

  // ---- packages API -------------------------------------------------------------------------------

  Result<Json> package_json(const storage::PackageRow& p) {
    Json j{{"id", p.id},
           {"name", p.name},
           {"version", p.version},
           {"prerequisite_version", p.prerequisite_version ? Json(*p.prerequisite_version) : Json(nullptr)},
           {"type", p.type},
           {"size", p.size},
           {"sha256", p.sha256},
           {"tags", p.tags},
           {"available", p.available},
           {"prerelease_ok", p.prerelease_ok},
           {"attributes", p.attributes},
           {"state", p.state},
           {"created_at", core::format_rfc3339(p.created_at)},
           {"updated_at", core::format_rfc3339(p.updated_at)}};
    if (p.type == "external") j["url"] = p.url;
    if (p.state == "ready") {
      j["received"] = p.size;
    } else {
      auto chunks = packages.chunks(p.id);
      if (!chunks) return chunks.error();
      j["received"] = covered_bytes(*chunks);
    }
    return j;
  }

  Result<Json> create(const Json& body) {
    auto name = protocol::required_string(body, "name");
    if (!name) return name.error();
    if (name->empty() || name->size() > 256) {
      return make_error(ErrorCode::bad_request, "field 'name' must be 1 to 256 characters");
    }
    auto version_text = protocol::required_string(body, "version");
    if (!version_text) return version_text.error();
    auto version = core::parse_semver(*version_text);
    if (!version) return make_error(ErrorCode::bad_request, "field 'version': " + version.error().message);
    auto prereq_text = protocol::optional_string(body, "prerequisite_version");
    if (!prereq_text) return prereq_text.error();
    std::optional<std::string> prereq;
    if (*prereq_text) {
      auto v = core::parse_semver(**prereq_text);
      if (!v) return make_error(ErrorCode::bad_request, "field 'prerequisite_version': " + v.error().message);
      prereq = core::format(*v);
    }
    auto type = protocol::required_string(body, "type");
    if (!type) return type.error();
    if (*type != "internal" && *type != "external") {
      return make_error(ErrorCode::bad_request, "field 'type' must be one of internal, external");
    }
    const bool internal = *type == "internal";
    auto url = protocol::optional_string(body, "url");
    if (!url) return url.error();
    auto sha = protocol::optional_string(body, "sha256");
    if (!sha) return sha.error();
    auto size = protocol::optional_int(body, "size", 0);
    if (!size) return size.error();
    auto tags = parse_tags(body, "tags");
    if (!tags) return tags.error();
    auto available = protocol::required_bool(body, "available");
    if (!available) return available.error();
    auto prerelease_ok = protocol::optional_bool(body, "prerelease_ok");
    if (!prerelease_ok) return prerelease_ok.error();
    auto attributes = protocol::optional_string_map(body, "attributes");
    if (!attributes) return attributes.error();
    auto request_id = protocol::optional_object_id(body, "request_id");
    if (!request_id) return request_id.error();

    if (*sha && !is_lower_hex64(**sha)) {
      return make_error(ErrorCode::bad_request, "field 'sha256' must be 64 lowercase hex characters");
    }
    if (internal) {
      if (*url) return make_error(ErrorCode::bad_request, "an internal package takes no 'url'");
      if (!*sha)
        return make_error(ErrorCode::bad_request, "an internal package needs 'sha256' to check its upload");
      if (!*size)
        return make_error(ErrorCode::bad_request, "an internal package needs 'size' to check its upload");
      if (**size > config.provisioning_max_package_bytes) {
        return make_error(ErrorCode::too_large,
                          fmt::format("package of {} bytes exceeds the limit of {} bytes", **size,
                                      config.provisioning_max_package_bytes));
      }
    } else if (!*url || !valid_url(**url)) {
      return make_error(ErrorCode::bad_request, "an external package needs an http:// or https:// 'url'");
    }

    const std::string fingerprint = request_fingerprint(body);
    if (*request_id) {
      auto seen = idempotency.find("packages/create", **request_id);
      if (!seen) return seen.error();
      if (*seen) {
        if ((*seen)->fingerprint != fingerprint) {
          return make_error(
              ErrorCode::conflict,
              fmt::format("request_id '{}' was already used with a different request", **request_id));
        }
        return Json::parse((*seen)->answer);
      }
    }

    const core::TimeMs now = clock.now_ms();
    storage::PackageRow row;
    row.id = core::new_id(now);
    row.name = *name;
    row.version = core::format(*version);
    row.prerequisite_version = prereq;
    row.type = *type;
    row.url = url->value_or("");
    row.sha256 = sha->value_or("");
    row.size = size->value_or(0);
    row.tags = *tags;
    row.available = *available;
    row.prerelease_ok = prerelease_ok->value_or(false);
    row.attributes = *attributes;
    row.state = internal ? "pending_upload" : "ready";
    row.created_at = row.updated_at = now;
    Json answer{{"id", row.id}};
    auto st = db.transaction([&]() -> Status {
      if (auto s = packages.insert(row); !s) return s;
      if (*request_id) {
        return idempotency.put("packages/create", **request_id, fingerprint, protocol::dump_json(answer),
                               now);
      }
      return {};
    });
    if (!st) return st.error();
    spdlog::info("package {} created: {} {} ({})", row.id, row.name, row.version, row.type);
    return answer;
  }

  Result<Json> get(const Json& body) {
    auto id = protocol::required_object_id(body, "id");
    if (!id) return id.error();
    auto p = packages.get(*id);
    if (!p) return p.error();
    return package_json(*p);
  }

  Result<Json> list(const Json& body) {
    storage::PackageQuery q;
    auto name = protocol::optional_string(body, "name");
    if (!name) return name.error();
    q.name = *name;
    auto tag = protocol::optional_object_id(body, "tag");
    if (!tag) return tag.error();
    q.tag = *tag;
    auto available = protocol::optional_bool(body, "available");
    if (!available) return available.error();
    q.available = *available;
    auto limit = protocol::optional_int(body, "limit", 1, k_list_page);
    if (!limit) return limit.error();
    q.limit = static_cast<int>(limit->value_or(100));
    auto after = protocol::optional_object_id(body, "after");
    if (!after) return after.error();
    q.after = *after;
    auto rows = packages.list(q);
    if (!rows) return rows.error();
    Json list = Json::array();
    for (const auto& p : *rows) {
      auto j = package_json(p);
      if (!j) return j.error();
      list.push_back(std::move(*j));
    }
    Json out{{"packages", std::move(list)}};
    if (static_cast<int>(rows->size()) == q.limit && !rows->empty()) out["next_after"] = rows->back().id;
    return out;
  }

  Result<Json> update(const Json& body) {
    auto id = protocol::required_object_id(body, "id");
    if (!id) return id.error();
    auto available = protocol::optional_bool(body, "available");
    if (!available) return available.error();
    std::optional<std::vector<std::string>> tags;
    if (body.contains("tags") && !body["tags"].is_null()) {
      auto t = parse_tags(body, "tags");
      if (!t) return t.error();
      tags = std::move(*t);
    }
    if (!*available && !tags)
      return make_error(ErrorCode::bad_request, "nothing to update: give 'available' or 'tags'");
    if (auto st = packages.update(*id, *available, tags, clock.now_ms()); !st) return st.error();
    return get(body);
  }

  Result<Json> remove(const Json& body) {
    auto id = protocol::required_object_id(body, "id");
    if (!id) return id.error();
    int tokens_removed = 0;
    auto st = db.transaction([&]() -> Status {
      auto n = tokens.remove_for_package(*id);
      if (!n) return n.error();
      tokens_removed = *n;
      return packages.remove(*id);
    });
    if (!st) return st.error();
    // The row is gone first: a crash now leaves an orphan file, which start() removes.
    for (const auto& path : {part_path(*id), bin_path(*id)}) {
      if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        spdlog::warn("cannot remove {}: {}", path, std::strerror(errno));
    }
    spdlog::info("package {} deleted ({} unspent download tokens removed)", *id, tokens_removed);
    return Json{{"id", *id}, {"deleted", true}};
  }

  // ---- upload ------------------------------------------------------------------------------------

  Result<Json> upload(const Json& header, std::string_view data) {
    auto id = protocol::required_object_id(header, "id");
    if (!id) return id.error();
    auto offset = protocol::required_int(header, "offset", 0);
    if (!offset) return offset.error();
    auto last = protocol::optional_bool(header, "last");
    if (!last) return last.error();
    if (static_cast<std::int64_t>(data.size()) > config.provisioning_max_chunk_bytes) {
      return make_error(ErrorCode::too_large,
                        fmt::format("upload chunk of {} bytes exceeds the limit of {} bytes", data.size(),
                                    config.provisioning_max_chunk_bytes));
    }
    auto p = packages.get(*id);
    if (!p) return p.error();
    if (p->type != "internal") return make_error(ErrorCode::conflict, "an external package takes no upload");
    if (p->state == "ready") {
      // A re-sent frame after the package was verified (e.g. the answer was lost): nothing to do.
      return Json{{"id", p->id}, {"received", p->size}, {"state", "ready"}};
    }
    const auto length = static_cast<std::int64_t>(data.size());
    if (*offset + length > p->size) {
      return make_error(ErrorCode::bad_request, fmt::format("chunk [{}, {}) lies beyond the package size {}",
                                                            *offset, *offset + length, p->size));
    }
    const std::string part = part_path(p->id);
    if (length > 0) {
      Fd fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
      if (!fd.ok()) return io_error("cannot open", part);
      std::size_t done = 0;
      while (done < data.size()) {
        ssize_t n =
            ::pwrite(fd.get(), data.data() + done, data.size() - done, *offset + static_cast<off_t>(done));
        if (n < 0) {
          if (errno == EINTR) continue;
          return io_error("cannot write", part);
        }
        done += static_cast<std::size_t>(n);
      }
      // Durable before it is recorded: a recorded chunk is never lost by a crash.
      if (::fsync(fd.get()) != 0) return io_error("cannot fsync", part);
      if (auto st = packages.record_chunk(p->id, *offset, length); !st) return st.error();
    }
    auto chunks = packages.chunks(p->id);
    if (!chunks) return chunks.error();
    const std::int64_t received = covered_bytes(*chunks);
    if (received < p->size) {
      if (last->value_or(false)) {
        return make_error(ErrorCode::bad_request,
                          fmt::format("upload incomplete: {} of {} bytes received; send the "
                                      "missing chunks",
                                      received, p->size));
      }
      return Json{{"id", p->id}, {"received", received}, {"state", "pending_upload"}};
    }
    if (auto st = finish_upload(*p); !st) return st.error();
    return Json{{"id", p->id}, {"received", p->size}, {"state", "ready"}};
  }

  // Every byte is present: check size and digest by streaming the file, then move it into place.
  Status finish_upload(const storage::PackageRow& p) {
    const std::string part = part_path(p.id);
    if (p.size == 0) {
      Fd create(::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
      if (!create.ok()) return io_error("cannot create", part);
    }
    std::string digest;
    std::int64_t file_size = 0;
    {
      Fd fd(::open(part.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd.ok()) return io_error("cannot open", part);
      struct stat sb {};
      if (::fstat(fd.get(), &sb) != 0) return io_error("cannot stat", part);
      file_size = sb.st_size;
      core::Sha256 hasher;
      std::string block(k_hash_block, '\0');
      for (off_t at = 0;;) {
        ssize_t n = ::pread(fd.get(), block.data(), block.size(), at);
        if (n < 0) {
          if (errno == EINTR) continue;
          return io_error("cannot read", part);
        }
        if (n == 0) break;
        hasher.update(std::string_view(block.data(), static_cast<std::size_t>(n)));
        at += n;
      }
      digest = hasher.final_hex();
    }
    if (file_size != p.size || digest != p.sha256) {
      // Start over: the sender must upload the right bytes again; nothing of this upload is offered.
      ::unlink(part.c_str());
      if (auto st = packages.clear_chunks(p.id); !st) return st;
      spdlog::warn("package {} upload refused: {} bytes with sha256 {}, expected {} bytes with sha256 {}",
                   p.id, file_size, digest, p.size, p.sha256);
      return make_error(
          ErrorCode::bad_request,
          fmt::format("upload does not match the package: got {} bytes with sha256 {}, expected {} bytes "
                      "with sha256 {}; the upload was discarded",
                      file_size, digest, p.size, p.sha256));
    }
    const std::string bin = bin_path(p.id);
    DISPATCH_FAILPOINT("before_package_rename");
    if (::rename(part.c_str(), bin.c_str()) != 0) return io_error("cannot rename", part);
    if (auto st = fsync_dir(config.storage_data_dir); !st) return st;
    DISPATCH_FAILPOINT("after_package_rename");
    if (auto st = packages.set_ready(p.id, bin, p.size, p.sha256, clock.now_ms()); !st) return st;
    batch_finished_upload = true;
    spdlog::info("package {} uploaded and verified ({} bytes)", p.id, p.size);
    return {};
  }

  // ---- device query --------------------------------------------------------------------------------

  std::string reply_topic(const std::string& hw, const InboundMessage& m, protocol::TopicKind kind) {
    if (!m.response_topic.empty() && topics.response_topic_allowed(m.response_topic, kind, hw))
      return m.response_topic;
    auto t = topics.device(kind, hw);
    return t ? *t : std::string();  // hw was validated by the router, so this is never empty
  }

  void send(std::string topic, std::string payload, const InboundMessage& m) {
    OutMessage out;
    out.topic = std::move(topic);
    out.payload = std::move(payload);
    out.qos = 1;
    if (m.has_correlation_data) {
      out.correlation_data = m.correlation_data;
      out.has_correlation_data = true;
    }
    publisher.publish(std::move(out));
  }

  // The fields of a query, checked before any device lookup or cryptography.
  struct Query {
    std::optional<std::string> version;
    std::optional<std::string> package_id;
    std::optional<std::string> token;
    std::optional<std::string> ts;
    std::optional<std::string> nonce;
  };

  Result<Query> parse_query(const Json& body, core::TimeMs now) {
    Query q;
    auto version = protocol::optional_string(body, "version");
    if (!version) return version.error();
    if (*version) {
      if (auto v = core::parse_semver(**version); !v) {
        return make_error(ErrorCode::bad_request, "field 'version': " + v.error().message);
      }
    }
    q.version = *version;
    auto package_id = protocol::optional_object_id(body, "package_id");
    if (!package_id) return package_id.error();
    q.package_id = *package_id;
    if (config.provisioning_token == TokenMode::off) return q;

    auto token = protocol::required_string(body, "token");
    if (!token) return token.error();
    q.token = *token;
    auto ts = protocol::optional_string(body, "ts");
    if (!ts) return ts.error();
    auto nonce = protocol::optional_string(body, "nonce");
    if (!nonce) return nonce.error();
    const bool fresh = ts->has_value() || nonce->has_value() || config.provisioning_token == TokenMode::fresh;
    if (!fresh) return q;  // a static token ("any" mode)
    if (!*ts) return make_error(ErrorCode::bad_request, "missing required field 'ts'");
    if (!*nonce) return make_error(ErrorCode::bad_request, "missing required field 'nonce'");
    if (!valid_nonce(**nonce)) {
      return make_error(ErrorCode::bad_request, "field 'nonce' must be 16 to 64 characters of [A-Za-z0-9_-]");
    }
    auto t = core::parse_rfc3339(**ts);
    if (!t) return make_error(ErrorCode::bad_request, "field 'ts' must be an RFC 3339 time");
    const core::TimeMs skew_ms = config.provisioning_skew_s * 1000;
    if (*t < now - skew_ms || *t > now + skew_ms) {
      return make_error(ErrorCode::unauthorized,
                        fmt::format("token time is more than {} s away from the service clock",
                                    config.provisioning_skew_s));
    }
    q.ts = *ts;
    q.nonce = *nonce;
    return q;
  }

  // Counts this query and says whether it may proceed (PROTOCOL §2.1: every query counts).
  Status count_query(const std::string& hw, core::TimeMs now) {
    const std::string key = "prov:" + hw;
    if (!limiter.contains(key)) {
      auto events = rate.events(key, now - config.provisioning_rate_window_s * 1000 + 1);
      if (!events) return events.error();
      limiter.restore(key, std::move(*events));
    }
    const core::RateDecision decision = limiter.hit(key);
    if (auto st = rate.record_event(key, now); !st) return st;
    if (decision.allowed) return {};
    // hit() measured the wait with this refused query counted.
    Error e = make_error(ErrorCode::rate_limited, "too many package queries; retry later");
    e.retry_after_s = std::max<std::int64_t>(decision.retry_after_s, 1);
    return e;
  }

  Result<Json> answer_query(const std::string& hw, const Result<Json>& body, core::TimeMs now) {
    if (auto st = count_query(hw, now); !st) return st.error();
    if (!body) return body.error();
    auto q = parse_query(*body, now);
    if (!q) return q.error();

    auto device = devices.get(hw);
    if (!device && device.error().code != ErrorCode::not_found) return device.error();
    if (config.provisioning_token != TokenMode::off) {
      const std::string message = q->ts ? core::fresh_token_message(hw, *q->ts, *q->nonce) : hw;
      bool verified = false;
      const core::PublicKey* key = device ? device_key(hw, device->public_key_pem) : nullptr;
      if (key) {
        verified = key->verify(message, *q->token);
      } else {
        (void)decoy_key().verify(message, *q->token);
      }
      if (!verified) return make_error(ErrorCode::unauthorized, std::string(k_unauthorized));
      if (q->nonce) {
        auto fresh = nonces.insert_if_new(hw + "\n" + *q->nonce, now);
        if (!fresh) return fresh.error();
        if (!*fresh) return make_error(ErrorCode::unauthorized, "token nonce already used");
      }
    } else if (!device) {
      return make_error(ErrorCode::unauthorized, std::string(k_unauthorized));
    }

    auto chosen = select(*device, *q);
    if (!chosen) return chosen.error();
    if (!*chosen) return Json{{"status", "up_to_date"}};
    const storage::PackageRow& p = **chosen;
    Json pkg{{"id", p.id},     {"name", p.name}, {"version", p.version},
             {"type", p.type}, {"size", p.size}, {"sha256", p.sha256}};
    if (p.type == "external") {
      pkg["url"] = p.url;
    } else {
      const std::string token = core::random_token();
      storage::DownloadTokenRow row;
      row.token_hash = core::sha256_hex(token);
      row.hardware_id = hw;
      row.package_id = p.id;
      row.created_at = now;
      row.expires_at = now + config.provisioning_download_token_ttl_s * 1000;
      if (auto st = tokens.insert(row); !st) return st.error();
      DISPATCH_FAILPOINT("before_token_issue_commit");
      batch_issued_token = true;
      pkg["download_token"] = token;
      pkg["expires_at"] = core::format_rfc3339(row.expires_at);
    }
    return Json{{"status", "update"}, {"package", std::move(pkg)}};
  }

  // The parsed key of a registered device, or null when its PEM does not parse (refused like a bad
  // signature).
  const core::PublicKey* device_key(const std::string& hw, const std::string& pem) {
    if (auto it = keys.find(hw); it != keys.end()) {
      if (it->second.pem == pem) return &it->second.key;
      keys.erase(it);
    }
    auto key = core::PublicKey::from_pem(pem);
    if (!key) return nullptr;
    if (keys.size() >= k_key_cache_size) keys.erase(keys.begin());  // any entry: a miss only costs a parse
    return &keys.emplace(hw, ParsedKey{pem, std::move(*key)}).first->second.key;
  }

  static core::PackageCandidate candidate(const storage::PackageRow& p) {
    core::PackageCandidate c;
    c.id = p.id;
    c.version = p.version;
    c.prerequisite_version = p.prerequisite_version;
    c.tags = p.tags;
    c.available = p.available;
    c.ready = p.state == "ready";
    c.prerelease_ok = p.prerelease_ok;
    c.created_at = p.created_at;
    return c;
  }

  Result<std::optional<storage::PackageRow>> select(const storage::DeviceRow& device, const Query& q) {
    if (q.package_id) {
      auto p = packages.get(*q.package_id);
      if (!p && p.error().code != ErrorCode::not_found) return p.error();
      if (!p || !core::offerable(candidate(*p), device.tags)) {
        return make_error(ErrorCode::not_found,
                          fmt::format("no package '{}' for this device", *q.package_id));
      }
      return std::optional<storage::PackageRow>(std::move(*p));
    }
    std::optional<std::string> version = q.version ? q.version : device.reported_version;
    if (!version) return make_error(ErrorCode::bad_request, "missing required field 'version'");
    auto loaded = offered_packages();
    if (!loaded) return loaded.error();
    const Offered& o = **loaded;
    auto best = core::select_latest(o.candidates, *version, device.tags);
    if (!best) return best.error();
    if (!*best) return std::optional<storage::PackageRow>();
    return std::optional<storage::PackageRow>(o.rows[**best]);
  }

  Result<const Offered*> offered_packages() {
    if (offered) return &*offered;
    Offered o;
    storage::PackageQuery pq;
    pq.available = true;
    pq.limit = k_list_page;
    for (;;) {
      auto page = packages.list(pq);
      if (!page) return page.error();
      const bool more = static_cast<int>(page->size()) == pq.limit;
      if (!page->empty()) pq.after = page->back().id;
      for (auto& r : *page) o.rows.push_back(std::move(r));
      if (!more) break;
    }
    o.candidates.reserve(o.rows.size());
    for (const auto& r : o.rows) o.candidates.push_back(candidate(r));
    offered = std::move(o);
    return &*offered;
  }

  void on_request(const std::string& hw, const InboundMessage& m) {
    auto body = protocol::parse_json_object(m.payload, limits);
    const auto correlation = correlation_of(body);
    const core::TimeMs now = clock.now_ms();
    Result<Json> answer = make_error(ErrorCode::internal, "internal error");
    try {
      // Storage failures roll the whole query back; every other outcome (refusals included) commits, so
      // the rate-limit event of a refused query counts.
      auto st = db.transaction([&]() -> Status {
        answer = answer_query(hw, body, now);
        if (!answer &&
            (answer.error().code == ErrorCode::unavailable || answer.error().code == ErrorCode::internal)) {
          return answer.error();
        }
        return {};
      });
      if (!st) answer = st.error();
    } catch (const std::exception& e) {
      spdlog::error("provisioning query of {} failed unexpectedly: {}", hw, e.what());
      answer = make_error(ErrorCode::internal, "internal error");
    }
    std::string payload;
    if (answer) {
      Json out = std::move(*answer);
      if (correlation) out["correlation_id"] = *correlation;
      payload = protocol::dump_json(out);
    } else {
      if (answer.error().code != ErrorCode::rate_limited) {
        spdlog::debug("provisioning query of {} refused: {}", hw, answer.error().message);
      }
      payload = protocol::error_payload(answer.error(), correlation);
    }
    send(reply_topic(hw, m, protocol::TopicKind::provisioning_reply), std::move(payload), m);
  }

  // ---- download ----------------------------------------------------------------------------------

  struct Chunk {
    Json header;
    std::string bytes;
  };

  Result<Chunk> serve_chunk(const std::string& hw, const Result<Json>& body, core::TimeMs now) {
    if (!body) return body.error();
    auto token = protocol::required_string(*body, "download_token");
    if (!token) return token.error();
    auto offset = protocol::required_int(*body, "offset", 0);
    if (!offset) return offset.error();
    auto length = protocol::required_int(*body, "length", 1, config.provisioning_max_chunk_bytes);
    if (!length) return length.error();

    const std::string hash = core::sha256_hex(*token);
    auto row = tokens.get_by_hash(hash);
    if (!row) {
      if (row.error().code == ErrorCode::not_found)
        return make_error(ErrorCode::token_invalid, std::string(k_token_invalid));
      return row.error();
    }
    if (row->spent || now >= row->expires_at || row->hardware_id != hw) {
      return make_error(ErrorCode::token_invalid, std::string(k_token_invalid));
    }
    auto p = packages.get(row->package_id);
    if (!p || p->state != "ready" || p->type != "internal") {
      if (!p && p.error().code != ErrorCode::not_found) return p.error();
      return make_error(ErrorCode::token_invalid, std::string(k_token_invalid));
    }
    const std::int64_t total = p->size;
    if (*offset > total || (*offset == total && total > 0)) {
      return make_error(ErrorCode::bad_request,
                        fmt::format("offset {} lies beyond the package size {}", *offset, total));
    }
    const std::int64_t len = std::min(*length, total - *offset);
    Chunk c;
    c.bytes.resize(static_cast<std::size_t>(len));
    if (len > 0) {
      Fd fd(::open(p->file_path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd.ok()) return io_error("cannot open", p->file_path);
      std::size_t done = 0;
      while (done < c.bytes.size()) {
        ssize_t n = ::pread(fd.get(), c.bytes.data() + done, c.bytes.size() - done,
                            *offset + static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return io_error("cannot read", p->file_path);
        done += static_cast<std::size_t>(n);
      }
    }
    // Recorded only once the bytes are in hand; the store decides atomically whether the token is spent.
    auto served = tokens.serve(hash, hw, now, *offset, len, total);
    if (!served) return served.error();
    if (served->spent_now) {
      DISPATCH_FAILPOINT("before_token_spend_commit");
      batch_spent_token = true;
      spdlog::info("download token of {} for package {} fully served", hw, p->id);
    }
    c.header = Json{{"offset", *offset},
                    {"length", len},
                    {"total", total},
                    {"sha256", p->sha256},
                    {"last", *offset + len == total}};
    return c;
  }

  void on_download(const std::string& hw, const InboundMessage& m) {
    auto body = protocol::parse_json_object(m.payload, limits);
    const auto correlation = correlation_of(body);
    Result<Chunk> chunk = make_error(ErrorCode::internal, "internal error");
    try {
      chunk = serve_chunk(hw, body, clock.now_ms());
    } catch (const std::exception& e) {
      spdlog::error("provisioning download of {} failed unexpectedly: {}", hw, e.what());
      chunk = make_error(ErrorCode::internal, "internal error");
    }
    std::string payload;
    if (chunk) {
      if (correlation) chunk->header["correlation_id"] = *correlation;
      payload = protocol::encode_frame(chunk->header, chunk->bytes);
    } else {
      Json header = protocol::error_json(chunk.error());
      if (correlation) header["correlation_id"] = *correlation;
      payload = protocol::encode_frame(header, {});
    }
    send(reply_topic(hw, m, protocol::TopicKind::provisioning_data), std::move(payload), m);
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  Status start() {
    if (config.provisioning_token == TokenMode::off) {
      spdlog::warn(
          "*** provisioning.token = off: package queries are answered WITHOUT any device signature. "
          "Use this only on a trusted network. ***");
    }
    std::error_code ec;
    std::filesystem::create_directories(config.storage_data_dir, ec);
    if (ec) {
      return make_error(ErrorCode::unavailable, fmt::format("cannot create data directory {}: {}",
                                                            config.storage_data_dir, ec.message()));
    }
    (void)decoy_key();
    return cleanup_files();
  }

  // Removes files of packages that no longer exist and repairs an upload interrupted between the
  // rename into place and set_ready (the .bin goes back to .part; the next frame verifies it again).
  Status cleanup_files() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(config.storage_data_dir, ec)) {
      const auto path = entry.path();
      const auto ext = path.extension().string();
      if (ext != ".part" && ext != ".bin") continue;
      const std::string id = path.stem().string();
      auto p = packages.get(id);
      if (!p) {
        if (p.error().code != ErrorCode::not_found) return p.error();
        spdlog::info("removing orphan package file {}", path.string());
        std::filesystem::remove(path, ec);
        continue;
      }
      if (ext == ".bin" && p->state != "ready") {
        std::filesystem::rename(path, part_path(id), ec);
        if (ec) spdlog::warn("cannot move {} back: {}", path.string(), ec.message());
      }
    }
    if (ec) {
      return make_error(ErrorCode::unavailable, fmt::format("cannot list data directory {}: {}",
                                                            config.storage_data_dir, ec.message()));
    }
    return {};
  }

  void on_timer() {
    const core::TimeMs now = clock.now_ms();
    if (now - last_prune < k_prune_period_ms) return;
    last_prune = now;
    // A nonce can be presented until its ts + skew, and its ts may lie skew ahead of when it was seen.
    if (auto n = nonces.prune(now - 2 * config.provisioning_skew_s * 1000); !n) {
      spdlog::warn("nonce pruning failed: {}", n.error().message);
    }
    if (auto n = rate.prune(now - config.provisioning_rate_window_s * 1000); !n) {
      spdlog::warn("rate window pruning failed: {}", n.error().message);
    }
    if (auto n = tokens.prune_expired(now); !n)
      spdlog::warn("download token pruning failed: {}", n.error().message);
  }
};

Provisioning::Provisioning(const Config& config, core::Clock& clock, storage::Database& db,
                           Publisher& publisher, const protocol::Topics& topics)
    : impl_(std::make_unique<Impl>(config, clock, db, publisher, topics)) {}
Provisioning::~Provisioning() = default;

core::Status Provisioning::start() { return impl_->start(); }

core::Result<nlohmann::json> Provisioning::api(const std::string& action, const nlohmann::json& body) {
  impl_->offered.reset();  // whatever the action, the next selection reads the packages again
  if (action == "create") return impl_->create(body);
  if (action == "get") return impl_->get(body);
  if (action == "list") return impl_->list(body);
  if (action == "update") return impl_->update(body);
  if (action == "delete") return impl_->remove(body);
  return make_error(ErrorCode::not_found,
                    fmt::format("unknown API action packages/{}", protocol::printable(action)));
}

core::Result<nlohmann::json> Provisioning::upload(const nlohmann::json& header, std::string_view body) {
  impl_->offered.reset();
  return impl_->upload(header, body);
}

void Provisioning::on_request(const std::string& hw, const InboundMessage& m) { impl_->on_request(hw, m); }
void Provisioning::on_download(const std::string& hw, const InboundMessage& m) { impl_->on_download(hw, m); }
void Provisioning::on_timer() { impl_->on_timer(); }

void Provisioning::after_commit() {
  // The batch's answers (a download token, the last chunk, "ready") are not published yet.
  if (impl_->batch_issued_token) DISPATCH_FAILPOINT("after_token_issue_commit");
  if (impl_->batch_spent_token) DISPATCH_FAILPOINT("after_token_spend_commit");
  if (impl_->batch_finished_upload) DISPATCH_FAILPOINT("after_package_ready_commit");
  impl_->batch_issued_token = impl_->batch_spent_token = impl_->batch_finished_upload = false;
}

}  // namespace dispatch::service
