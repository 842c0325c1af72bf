// DeviceQuery: the device package query (PROTOCOL §2.1–2.3) in the order that keeps it cheap to refuse:
// rate limit → parse → device → token (signature, then nonce) → selection → download token. Each query
// is one write transaction, so its rate-limit event, its nonce and its download token are committed
// together and survive a restart. Called only from the service loop thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/package_selection.h"
#include "protocol/core/rate_limiter.h"
#include "protocol/core/signature.h"
#include "protocol/json_request.h"
#include "protocol/package_requests.h"
#include "service/batch_effects.h"
#include "service/config.h"
#include "service/event_queue.h"
#include "service/provisioning/download_tokens.h"
#include "service/router.h"
#include "storage/database.h"
#include "storage/devices.h"
#include "storage/nonces.h"
#include "storage/packages.h"
#include "storage/rate_windows.h"

namespace dispatch::service::provisioning {

class DeviceQuery {
 public:
  // Queries answered, by transport ("mqtt", "http") and outcome: "update", "up_to_date" or the refusal's
  // error code ("rate_limited", "unauthorized", …). Both label sets are small and fixed.
  using Outcomes = std::map<std::pair<std::string, std::string>, std::uint64_t>;

  // A query that issues a download token notes after_token_issue_commit in effects.
  DeviceQuery(const Config& config, core::Clock& clock, storage::Database& db, DownloadTokens& tokens,
              DeviceAnswers& answers, BatchEffects& effects);

  // Checks provisioning.token and warns loudly when it is off. bad_request for an unknown mode.
  core::Status start();

  // A query on esthesis/provisioning/request/{hw}: exactly one answer on the device's reply topic.
  void on_request(const std::string& hw, const InboundMessage& m);

  // The same query from another transport (HTTP `find`, `find/by-id`): `body` holds the fields of a
  // §2.1 query (version or package_id, token). The same checks in the same order and the same rate
  // window as on_request, in one transaction; returns the §2.2 answer document ({status, package}) or
  // the refusal (rate_limited with retry_after_s, unauthorized, not_found, bad_request, …).
  core::Result<nlohmann::json> query(const std::string& hw, const nlohmann::json& body);

  // A query too large to parse (over `limit` bytes): it still counts in hw's rate window (§2.1: every
  // query counts) and is answered rate_limited (with retry_after_s) when over the limit, else too_large
  // "message of <n> bytes exceeds the limit of <limit> bytes". Correlation Data is echoed.
  void on_oversize_request(const std::string& hw, const InboundMessage& m, std::size_t limit);

  // The packages changed: the next selection reads them again.
  void packages_changed() { offered_.reset(); }

  const Outcomes& outcomes() const { return outcomes_; }

 private:
  struct Offered {
    std::vector<storage::PackageRow> rows;
    std::vector<core::PackageCandidate> candidates;
  };
  struct ParsedKey {
    std::string pem;
    core::Verifier key;
  };

  core::Status count_query(const std::string& hw, core::TimeMs now);
  core::Result<nlohmann::json> answer_query(const std::string& hw, const core::Result<nlohmann::json>& body,
                                            core::TimeMs now);
  core::Status verify(const std::string& hw, const std::optional<storage::DeviceRow>& device,
                      const protocol::PackageQuery& q, core::TimeMs now);
  core::Result<std::optional<storage::PackageRow>> select(const storage::DeviceRow& device,
                                                          const protocol::PackageQuery& q);
  core::Result<const Offered*> offered_packages();
  core::Verifier* device_key(const std::string& hw, const std::string& pem);
  // Runs `answer` in one transaction (rolled back only for storage failures); its answer or refusal.
  template <class F>
  core::Result<nlohmann::json> run_in_transaction(const char* transport, const std::string& hw, F&& answer);
  // Runs `answer` in one transaction and publishes what it returns (or its error) to hw.
  template <class F>
  void answer_in_transaction(const std::string& hw, const InboundMessage& m, const Correlation& correlation,
                             F&& answer);

  const Config& config_;
  core::Clock& clock_;
  storage::Database& db_;
  DownloadTokens& tokens_;
  DeviceAnswers& answers_;
  BatchEffects& effects_;
  protocol::JsonLimits limits_;
  storage::PackageStore packages_;
  storage::RateWindowStore rate_;
  storage::NonceStore nonces_;
  storage::DeviceStore devices_;
  // PostgreSQL (several instances): RateWindowStore::hit decides in the database. SQLite (one node): the
  // rate limit decides from memory; every event is also written to rate_events (in the query's
  // transaction), and a device the limiter does not hold is restored from there first, so a restart
  // or an eviction loses nothing. Memory is bounded by provisioning.max_tracked_devices devices (least
  // recently seen go).
  core::SlidingWindowLimiter limiter_;
  // Parsed device keys by hardware id, each with the PEM it came from (a re-registered key misses and
  // replaces its entry), prepared for verification (core::Verifier: OpenSSL's per-call setup was about a
  // quarter of an RSA-2048 verification). OpenSSL's PEM decoding costs several times the verification.
  static constexpr std::size_t k_key_cache_size = 16384;
  std::unordered_map<std::string, ParsedKey> keys_;
  // The available packages and their selection candidates, read once and kept until packages_changed().
  std::optional<Offered> offered_;
  Outcomes outcomes_;
  // The decoy key (device_query.cpp) prepared like the devices' keys, so a refusal costs the same.
  core::Verifier decoy_;
};

}  // namespace dispatch::service::provisioning
