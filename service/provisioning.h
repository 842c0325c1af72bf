// Provisioning (PROTOCOL §2 and the package resources of §3): the facade over service/provisioning/ —
// Packages (packages API and uploads), PackageFiles (the bytes on disk), DeviceQuery (rate limit →
// device → token → selection → download token), Downloads (single-use chunked downloads) and
// DownloadTokens (their bookkeeping). Called only from the service loop thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "protocol/topics.h"
#include "service/batch_effects.h"
#include "service/config.h"
#include "service/event_queue.h"
#include "service/provisioning/downloads.h"
#include "service/publisher.h"

namespace dispatch::storage {
class Database;
}

namespace dispatch::service {

class Router;
namespace provisioning {
class PackageFiles;
}

// What provisioning counted since start (for /metrics).
struct ProvisioningCounters {
  // (transport, outcome) -> queries; see DeviceQuery::Outcomes.
  std::map<std::pair<std::string, std::string>, std::uint64_t> queries;
  std::uint64_t download_bytes_mqtt = 0;
  std::uint64_t download_bytes_http = 0;
};

class Provisioning {
 public:
  // Package files go to storage.data_dir. The durability boundaries a batch crossed (a download token
  // issued or spent, a package made ready) are noted in effects, which fires their failpoints
  // (after_token_issue_commit, after_token_spend_commit, after_package_ready_commit) after the commit.
  Provisioning(const Config& config, core::Clock& clock, storage::Database& db, Publisher& publisher,
               const protocol::Topics& topics, BatchEffects& effects);
  // The same with the package files given (tests pass a fake); `files` must outlive this object.
  Provisioning(const Config& config, core::Clock& clock, storage::Database& db, Publisher& publisher,
               const protocol::Topics& topics, BatchEffects& effects, provisioning::PackageFiles& files);
  ~Provisioning();
  Provisioning(const Provisioning&) = delete;
  Provisioning& operator=(const Provisioning&) = delete;

  // packages/create|get|list|update|delete|upload, and the device topics provisioning/request (with its
  // oversize handler) and provisioning/download.
  void register_routes(Router& router);

  // Start-up work (e.g. removing half-written upload files, pruning expired state).
  core::Status start();

  // packages/create|get|list|update|delete: the answer document, or an error for the caller to send.
  core::Result<nlohmann::json> api(const std::string& action, const nlohmann::json& body);
  // packages/upload: one frame (header already parsed as JSON; body = the raw bytes).
  core::Result<nlohmann::json> upload(const nlohmann::json& header, std::string_view body);

  // esthesis/provisioning/request/{hw} and …/download/{hw}: answered through DeviceAnswers (the device's
  // own topics, or an allowed Response Topic).
  void on_request(const std::string& hw, const InboundMessage& m);
  void on_download(const std::string& hw, const InboundMessage& m);
  // A request on …/request/{hw} larger than `limit` bytes, which the router does not parse: it counts in
  // the device's rate window like every query (PROTOCOL §2.1) and is answered too_large, or
  // rate_limited when the device is over its limit.
  void on_oversize_request(const std::string& hw, const InboundMessage& m, std::size_t limit);

  // The HTTP transport of the device query and download (PROTOCOL §6); see DeviceQuery::query and
  // Downloads::begin_stream / end_stream / abandon_stream.
  core::Result<nlohmann::json> query(const std::string& hw, const nlohmann::json& body);
  core::Result<provisioning::Downloads::Stream> begin_stream(const std::string& token);
  void end_stream(std::uint64_t tag, std::int64_t first, std::int64_t bytes);
  void abandon_stream(std::uint64_t tag);
  std::optional<std::uint64_t> stream_in_progress(const std::string& token) const;

  ProvisioningCounters counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dispatch::service
