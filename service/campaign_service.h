// CampaignService: campaigns (PROTOCOL §4) on top of the pure engine in campaigns/. Keeps a snapshot of
// every active campaign in memory, commits every engine result before publishing its sends, and
// publishes the retained progress events. Called only from the service loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "protocol/topics.h"
#include "service/config.h"
#include "service/publisher.h"

namespace dispatch::storage {
class Database;
}

namespace dispatch::service {

class CampaignService {
 public:
  // next_tag hands out publish tags unique within the process (shared with the command outbox).
  CampaignService(const Config& config, core::Clock& clock, storage::Database& db, Publisher& publisher,
                  const protocol::Topics& topics, std::function<std::uint64_t()> next_tag);
  ~CampaignService();
  CampaignService(const CampaignService&) = delete;
  CampaignService& operator=(const CampaignService&) = delete;

  // Loads the active campaigns and re-queues sends committed but never acknowledged by the broker.
  core::Status start();

  // campaigns/create|start|pause|resume|terminate|get|list|delete.
  core::Result<nlohmann::json> api(const std::string& action, const nlohmann::json& body);

  // A device reply that is not a command delivery; true when command_id is a campaign attempt of hw.
  bool on_reply(const std::string& hw, const std::string& command_id, bool success,
                const std::string& output);
  // A device reported its firmware version (metadata).
  void on_version(const std::string& hw, const std::string& version);

  // Scheduler tick (from the loop's timer) and events at most once a second per running campaign.
  void tick();
  // Publishes up to budget queued sends; returns how many.
  size_t pump(size_t budget);
  size_t outbox_size() const;
  // True when tag was one of ours.
  bool on_publish_done(std::uint64_t tag, bool ok);
  // Commits batched bookkeeping.
  void flush();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dispatch::service
