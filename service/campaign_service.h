// CampaignService: campaigns (PROTOCOL §4) on top of the pure engine in campaigns/. Keeps a snapshot of
// every active campaign in memory, commits every engine result before publishing its sends, and
// publishes the retained progress events; its sends go through the shared Outbox. Called only from the
// service loop thread.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "protocol/topics.h"
#include "service/batch_effects.h"
#include "service/config.h"
#include "service/outbox.h"
#include "service/publisher.h"

namespace dispatch::storage {
class Database;
}

namespace dispatch::service {

class Outbox;
class Router;

class CampaignService {
 public:
  // Sends go through outbox (shared with the command deliveries). The after-commit failpoints of a
  // transition or of sends committed inside a batch (API requests) go through effects.
  CampaignService(const Config& config, core::Clock& clock, storage::Database& db, Publisher& publisher,
                  const protocol::Topics& topics, Outbox& outbox, BatchEffects& effects);
  ~CampaignService();
  CampaignService(const CampaignService&) = delete;
  CampaignService& operator=(const CampaignService&) = delete;

  // campaigns/create|start|pause|resume|terminate|get|list|delete.
  void register_routes(Router& router);

  // Loads the active campaigns and re-queues sends committed but never acknowledged by the broker.
  core::Status start();

  // The handler of one campaigns action (what the routes call; bad_request for an unknown action).
  core::Result<nlohmann::json> api(const std::string& action, const nlohmann::json& body);

  // A device reply that is not a command delivery; true when command_id is a campaign attempt of hw.
  bool on_reply(const std::string& hw, const std::string& command_id, bool success,
                const std::string& output);
  // Campaign attempts are commands like any other for the pending pull and presence redelivery
  // (PROTOCOL §1.3): the unanswered attempts to hw whose reply timeout has not passed, oldest first;
  // handed_over records a pending pull's hand-over as their last send; redeliver queues again those last
  // sent at or before sent_before and published fewer than max_publishes times (counted in memory per
  // attempt: a restart starts the count again) and returns how many.
  // On PostgreSQL these include the attempts of campaigns another instance drives, read from the
  // database as their driver committed them (their re-publications are counted in this instance).
  std::vector<PendingSend> in_flight(const std::string& hw, core::TimeMs now);
  void handed_over(const std::string& hw, const std::vector<std::string>& command_ids, core::TimeMs now);
  int redeliver(const std::string& hw, core::TimeMs now, core::TimeMs sent_before, int max_publishes);

  // A device reported its firmware version (metadata). Applied to the campaigns we drive; on PostgreSQL
  // also put into the version inbox of each campaign another instance drives with an open execution of
  // hw, for that instance to apply.
  void on_version(const std::string& hw, const std::string& version);

  // Scheduler tick (from the loop's timer) and events at most once a second per running campaign.
  void tick();
  // Commits batched bookkeeping (replies, and the acknowledged sends the outbox handed back), and ticks
  // when replies came (at most every 50 ms), and at once after a start or resume or when a reply left a
  // campaign with nothing in flight. Called outside any transaction (after the loop's batch committed).
  void flush();

  // Campaign command sends handed to the outbox (after their commit), since start.
  std::uint64_t sends() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dispatch::service
