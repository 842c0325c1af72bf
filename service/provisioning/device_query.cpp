#include "service/provisioning/device_query.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

#include "protocol/core/signature.h"
#include "protocol/core/time.h"
#include "protocol/errors.h"
#include "service/failpoint.h"
#include "service/logging.h"

namespace dispatch::service::provisioning {

using core::Error;
using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using Json = nlohmann::json;

namespace {

constexpr std::string_view k_unauthorized = "unauthorized";
constexpr int k_list_page = 1000;

// The one reading of provisioning.token.
protocol::QueryRules rules_of(const Config& c) {
  protocol::QueryRules r;
  r.token_required = c.provisioning_token != TokenMode::off;
  r.fresh_required = c.provisioning_token == TokenMode::fresh;
  r.skew_ms = c.provisioning_skew_s * 1000;
  return r;
}

// The key used for unknown devices, so that their refusal costs the same RSA verification as a bad
// signature of a registered device (no enumeration by timing). Its outcome is ignored (an unknown device is
// refused whatever it signed), so it need not be secret or fresh: a fixed RSA-2048 public key whose private
// half was thrown away, instead of generating one at every start (0.1–1 s of CPU on the 2-core VM).
constexpr const char* k_decoy_public_pem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArpWOrsOgLiXuBv4gpOVU\n"
    "kX4CbgKnHyPiwkK3MSrq91L4dYJvdE3/d1txX66trHG29NwEeJtO3fqkGGTgUnvl\n"
    "E8AKZRvVLL2wM07pPZOi2fHvh+xW+hnpOjUdfNe6JvsLUA32PWfdMnZ3NFPmKTLk\n"
    "qyAaU53VXWz3C2W75+UzXbinTG2jLycQlguOdGLl2cgCqw0jUSpdQB+el7/QpsVg\n"
    "0+U4P5oF8Il3xBF4NUATd3ktDshh9uGbegcmhYmDOLvuhPusRYsK1LNv6BR3E+Rt\n"
    "pE4s//N7lZ3QK2VEZBmoki/8LmKiyXUk1RfvUA44ZgWzXeEJRgCtuOCbXqsnxVC6\n"
    "NwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

const core::PublicKey& decoy_key() {
  static const core::PublicKey key = [] {
    auto parsed = core::PublicKey::from_pem(k_decoy_public_pem);
    if (!parsed) throw std::logic_error("the built-in decoy key does not parse: " + parsed.error().message);
    return std::move(*parsed);
  }();
  return key;
}

core::PackageCandidate candidate(const storage::PackageRow& p) {
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

}  // namespace

DeviceQuery::DeviceQuery(const Config& config, core::Clock& clock, storage::Database& db,
                         DownloadTokens& tokens, DeviceAnswers& answers, BatchEffects& effects)
    : config_(config),
      clock_(clock),
      db_(db),
      tokens_(tokens),
      answers_(answers),
      effects_(effects),
      packages_(db),
      rate_(db, std::max(config.provisioning_rate_limit, 0) + 1),
      nonces_(db),
      devices_(db),
      limiter_(clock, config.provisioning_rate_limit, config.provisioning_rate_window_s * 1000,
               static_cast<std::size_t>(config.provisioning_max_tracked_devices)),
      decoy_(decoy_key()) {
  limits_.max_bytes = static_cast<std::size_t>(config.api_max_request_bytes);
  limits_.max_depth = config.api_max_depth;
}

Status DeviceQuery::start() {
  // The mode itself was validated when the configuration was loaded.
  if (config_.provisioning_token == TokenMode::off) {
    spdlog::warn(
        "*** provisioning.token = off: package queries are answered WITHOUT any device signature. "
        "Use this only on a trusted network. ***");
  }
  return {};
}

template <class F>
Result<Json> DeviceQuery::run_in_transaction(const char* transport, const std::string& hw, F&& answer_fn) {
  Result<Json> answer = make_error(ErrorCode::internal, "internal error");
  try {
    // Storage failures roll the whole query back; every other outcome (refusals included) commits, so
    // the rate-limit event of a refused query counts.
    auto st = db_.transaction([&]() -> Status {
      answer = answer_fn();
      if (!answer &&
          (answer.error().code == ErrorCode::unavailable || answer.error().code == ErrorCode::internal)) {
        return answer.error();
      }
      return {};
    });
    if (!st) answer = st.error();
  } catch (const std::exception& e) {
    log_limited(spdlog::level::err, "provisioning.query_threw", {{"hardware_id", hw}},
                "provisioning query failed unexpectedly: {}", e.what());
    answer = make_error(ErrorCode::internal, "internal error");
  }
  std::string outcome = "update";
  if (!answer) {
    outcome = std::string(core::to_string(answer.error().code));
  } else if (const auto status = answer->find("status"); status != answer->end() && status->is_string()) {
    outcome = status->get<std::string>();
  }
  ++outcomes_[{transport, std::move(outcome)}];
  return answer;
}

template <class F>
void DeviceQuery::answer_in_transaction(const std::string& hw, const InboundMessage& m,
                                        const Correlation& correlation, F&& answer_fn) {
  Result<Json> answer = run_in_transaction("mqtt", hw, std::forward<F>(answer_fn));
  if (!answer && answer.error().code != ErrorCode::rate_limited) {
    log_debug({{"hardware_id", hw}}, "provisioning query refused: {}", answer.error().message);
  }
  answers_.answer(protocol::TopicKind::provisioning_reply, hw, m, correlation, answer);
}

void DeviceQuery::on_request(const std::string& hw, const InboundMessage& m) {
  auto body = protocol::parse_json_object(m.payload, limits_);
  const core::TimeMs now = clock_.now_ms();
  answer_in_transaction(hw, m, correlation_of(m, body ? &*body : nullptr),
                        [&] { return answer_query(hw, body, now); });
}

Result<Json> DeviceQuery::query(const std::string& hw, const Json& body) {
  const core::TimeMs now = clock_.now_ms();
  const Result<Json> parsed = body;
  return run_in_transaction("http", hw, [&] { return answer_query(hw, parsed, now); });
}

void DeviceQuery::on_oversize_request(const std::string& hw, const InboundMessage& m, std::size_t limit) {
  const core::TimeMs now = clock_.now_ms();
  answer_in_transaction(hw, m, correlation_of(m, nullptr), [&]() -> Result<Json> {
    if (auto st = count_query(hw, now); !st) return st.error();
    return make_error(ErrorCode::too_large, fmt::format("message of {} bytes exceeds the limit of {} bytes",
                                                        m.payload.size(), limit));
  });
}

// Counts this query and says whether it may proceed (PROTOCOL §2.1: every query counts).
Status DeviceQuery::count_query(const std::string& hw, core::TimeMs now) {
  const std::string key = "prov:" + hw;
  if (db_.backend() == storage::Backend::postgres) {
    // Several instances may answer this device (PROTOCOL §7): the database decides, exactly.
    auto decision =
        rate_.hit(key, now, config_.provisioning_rate_limit, config_.provisioning_rate_window_s * 1000);
    if (!decision) return decision.error();
    if (decision->allowed) return {};
    Error e = make_error(ErrorCode::rate_limited, "too many package queries; retry later");
    e.retry_after_s = std::max<std::int64_t>(decision->retry_after_s, 1);
    return e;
  }
  const core::TimeMs window_start = now - config_.provisioning_rate_window_s * 1000 + 1;
  if (!limiter_.contains(key)) {
    auto events = rate_.events(key, window_start);
    if (!events) return events.error();
    limiter_.restore(key, std::move(*events));
  }
  const core::RateDecision decision = limiter_.hit(key);
  // Allowed: the window held fewer than the limit, so the key's rows stay within rate_'s bound (limit + 1)
  // once the expired ones go; only a refusal pays for the walk that enforces it.
  if (auto st = rate_.record_event(key, now, window_start, !decision.allowed); !st) return st;
  if (decision.allowed) return {};
  // hit() measured the wait with this refused query counted.
  Error e = make_error(ErrorCode::rate_limited, "too many package queries; retry later");
  e.retry_after_s = std::max<std::int64_t>(decision.retry_after_s, 1);
  return e;
}

Status DeviceQuery::verify(const std::string& hw, const std::optional<storage::DeviceRow>& device,
                           const protocol::PackageQuery& q, core::TimeMs now) {
  // A device pre-created without a key (registration.mode = id) has not registered yet: unauthorized.
  const bool keyed = device && !device->public_key_pem.empty();
  if (!rules_of(config_).token_required) {
    if (!keyed) return make_error(ErrorCode::unauthorized, std::string(k_unauthorized));
    return {};
  }
  const std::string message = q.ts ? core::fresh_token_message(hw, *q.ts, *q.nonce) : hw;
  bool verified = false;
  core::Verifier* key = keyed ? device_key(hw, device->public_key_pem) : nullptr;
  if (key) {
    verified = key->verify(message, *q.token);
  } else {
    (void)decoy_.verify(message, *q.token);
  }
  if (!verified) return make_error(ErrorCode::unauthorized, std::string(k_unauthorized));
  if (q.nonce) {
    auto fresh = nonces_.insert_if_new(hw + "\n" + *q.nonce, now);
    if (!fresh) return fresh.error();
    if (!*fresh) return make_error(ErrorCode::unauthorized, "token nonce already used");
  }
  return {};
}

Result<Json> DeviceQuery::answer_query(const std::string& hw, const Result<Json>& body, core::TimeMs now) {
  if (auto st = count_query(hw, now); !st) return st.error();
  if (!body) return body.error();
  auto q = protocol::parse_package_query(*body, rules_of(config_), now);
  if (!q) return q.error();

  auto found = devices_.get(hw);
  if (!found && found.error().code != ErrorCode::not_found) return found.error();
  std::optional<storage::DeviceRow> device;
  if (found) device = std::move(*found);
  if (auto st = verify(hw, device, *q, now); !st) return st.error();

  auto chosen = select(*device, *q);
  if (!chosen) return chosen.error();
  if (!*chosen) return Json{{"status", "up_to_date"}};
  const storage::PackageRow& p = **chosen;
  Json pkg{{"id", p.id},     {"name", p.name}, {"version", p.version},
           {"type", p.type}, {"size", p.size}, {"sha256", p.sha256}};
  if (p.type == "external") {
    pkg["url"] = p.url;
  } else {
    auto issued = tokens_.issue(hw, p.id, now);
    if (!issued) return issued.error();
    DISPATCH_FAILPOINT("before_token_issue_commit");
    effects_.note("after_token_issue_commit");
    pkg["download_token"] = issued->token;
    pkg["expires_at"] = core::format_rfc3339(issued->expires_at);
  }
  return Json{{"status", "update"}, {"package", std::move(pkg)}};
}

// The parsed key of a registered device, or null when its PEM does not parse (refused like a bad
// signature).
core::Verifier* DeviceQuery::device_key(const std::string& hw, const std::string& pem) {
  if (auto it = keys_.find(hw); it != keys_.end()) {
    if (it->second.pem == pem) return &it->second.key;
    keys_.erase(it);
  }
  auto key = core::PublicKey::from_pem(pem);
  if (!key) return nullptr;
  if (keys_.size() >= k_key_cache_size) keys_.erase(keys_.begin());  // any entry: a miss only costs a parse
  return &keys_.emplace(hw, ParsedKey{pem, core::Verifier(*key)}).first->second.key;
}

Result<std::optional<storage::PackageRow>> DeviceQuery::select(const storage::DeviceRow& device,
                                                               const protocol::PackageQuery& q) {
  if (q.package_id) {
    auto p = packages_.get(*q.package_id);
    if (!p && p.error().code != ErrorCode::not_found) return p.error();
    if (!p || !core::offerable(candidate(*p), device.tags)) {
      return make_error(ErrorCode::not_found, fmt::format("no package '{}' for this device", *q.package_id));
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

Result<const DeviceQuery::Offered*> DeviceQuery::offered_packages() {
  // PostgreSQL: another instance may have changed the packages, and packages_changed() only hears of
  // this instance's changes, so the selection reads them with every query (≤ rate limit per device).
  if (offered_ && db_.backend() != storage::Backend::postgres) return &*offered_;
  Offered o;
  storage::PackageQuery pq;
  pq.available = true;
  pq.limit = k_list_page;
  for (;;) {
    auto page = packages_.list(pq);
    if (!page) return page.error();
    const bool more = static_cast<int>(page->size()) == pq.limit;
    if (!page->empty()) pq.after = page->back().id;
    for (auto& r : *page) o.rows.push_back(std::move(r));
    if (!more) break;
  }
  o.candidates.reserve(o.rows.size());
  for (const auto& r : o.rows) o.candidates.push_back(candidate(r));
  offered_ = std::move(o);
  return &*offered_;
}

}  // namespace dispatch::service::provisioning
