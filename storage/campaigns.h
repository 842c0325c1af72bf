// CampaignStore: campaigns, one execution row per (campaign, device), and the command id of every
// attempt. The uniqueness of (campaign_id, hardware_id) and of each attempt's command id is enforced
// by the schema, so no code path can contact a device twice for one attempt.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

struct CampaignRow {
  std::string id;
  std::string name;
  std::string type;
  std::string document_json;  // the validated document, as given
  std::string state;          // storage does not interpret states
  std::string reason;
  core::TimeMs created_at = 0;
  std::optional<core::TimeMs> started_at;
  std::optional<core::TimeMs> ended_at;
  int current_group = 0;
  std::optional<core::TimeMs> group_done_at;
  std::int64_t ramp_successes = 0;  // successes counted towards the rate ramp
  std::string engine_state;         // opaque text owned by the campaign engine
  core::TimeMs updated_at = 0;
};

struct ExecutionRow {
  std::string campaign_id;
  std::string hardware_id;
  int group_index = 0;
  std::string state = "queued";  // queued, sent, succeeded, failed, timed_out, canceled
  int attempt = 0;
  std::optional<std::string> command_id;  // the current attempt's command id
  std::optional<core::TimeMs> sent_at;
  std::optional<core::TimeMs> replied_at;
  std::optional<core::TimeMs> next_attempt_at;
  std::string output;
  bool version_verified = false;
  core::TimeMs updated_at = 0;
  // Schema v2.
  std::optional<core::TimeMs> first_sent_at;  // send time of attempt 1
  std::optional<core::TimeMs> finished_at;    // when the execution became terminal
  bool reply_ok = false;                      // success reply received, version report outstanding
  // Written by builds before session 9 (the highest attempt the broker acknowledged); nothing reads it
  // for a decision since a restart publishes every unanswered send again, and nothing writes it now
  // (insert writes 0). Kept: dropping a column means rebuilding the table.
  int published_attempt = 0;
  // Schema v3. verify_version: the device's reported version when the current attempt was sent.
  std::optional<std::string> version_at_send;
  // SQLite's rowid of the row when known (0: unknown, and always on PostgreSQL): executions() reads it and
  // insert_executions() reports it. update_executions() then finds the row by it instead of searching the
  // primary key's index (whose keys are two strings), and still checks campaign_id and hardware_id.
  std::int64_t rowid = 0;
};

// One attempt's command id (record_attempts) or one acknowledged publish (mark_published).
struct AttemptRecord {
  std::string campaign_id;
  std::string hardware_id;
  int attempt = 0;
  std::string command_id;  // unused by mark_published
};

// One attempt of an execution with its own reply, if one came (record_attempt_reply).
struct AttemptRow {
  int attempt = 0;
  std::string command_id;
  std::optional<core::TimeMs> replied_at;
  std::optional<bool> success;
  std::string output;
  bool operator==(const AttemptRow&) const = default;
};

struct AttemptRef {
  std::string campaign_id;
  std::string hardware_id;
  int attempt = 0;
};

// A reply to a campaign's current attempt received by an instance that does not drive the campaign
// (schema v7, campaign_replies): the driving instance applies it.
struct InboxReply {
  std::string campaign_id;
  std::string command_id;
  std::string hardware_id;
  bool success = false;
  std::string output;
  core::TimeMs replied_at = 0;
  bool operator==(const InboxReply&) const = default;
};

// An open (queued or sent) execution of one device, in any campaign (open_executions): what an instance
// that may not drive the campaign reads for the device's pending pull, presence redelivery and version
// reports (schema v8).
struct OpenExecution {
  std::string campaign_id;
  std::string state;  // queued or sent
  int attempt = 0;
  std::optional<std::string> command_id;
  std::optional<core::TimeMs> sent_at;
  bool operator==(const OpenExecution&) const = default;
};

// A device's version report for a campaign driven by another instance (schema v8, campaign_versions,
// the campaign's version inbox): the driving instance applies it.
struct VersionReport {
  std::string campaign_id;
  std::string hardware_id;
  std::string version;
  core::TimeMs reported_at = 0;
  bool operator==(const VersionReport&) const = default;
};

struct CampaignQuery {
  int limit = 100;
  std::optional<std::string> after;  // cursor: only ids strictly greater
  std::optional<std::string> state;
};

class CampaignStore {
 public:
  explicit CampaignStore(Database& db) : db_(db) {}

  // Campaigns per state (metrics): (state, count) for every state with at least one campaign.
  core::Result<std::vector<std::pair<std::string, std::int64_t>>> count_by_state();

  // conflict when the id exists.
  core::Status insert(const CampaignRow& row);
  // not_found when no such campaign.
  core::Result<CampaignRow> get(const std::string& id);
  // Campaigns ordered by id.
  core::Result<std::vector<CampaignRow>> list(const CampaignQuery& query);
  // Sets state, reason and updated_at = t; not_found when no such campaign.
  core::Status update_state(const std::string& id, const std::string& state, const std::string& reason,
                            core::TimeMs t);
  // Writes every mutable field of row (all but id, name, type, document_json, created_at);
  // not_found when no such campaign.
  core::Status update(const CampaignRow& row);
  // Deletes the campaign with its executions and attempts; not_found when no such campaign.
  core::Status remove(const std::string& id);

  // Inserts executions in one transaction; a row whose (campaign_id, hardware_id) exists is skipped
  // (the existing row is kept). Returns how many rows were inserted. not_found when a row names an
  // unknown campaign (nothing is written then). When rowids is given it gets each row's rowid, in order
  // (ExecutionRow::rowid; 0 for a skipped row, and every row on PostgreSQL).
  core::Result<int> insert_executions(const std::vector<ExecutionRow>& rows,
                                      std::vector<std::int64_t>* rowids = nullptr);
  // All executions of the campaign ordered by (group_index, hardware_id), with their rowids (SQLite).
  core::Result<std::vector<ExecutionRow>> executions(const std::string& campaign_id);
  // not_found when no such execution.
  core::Result<ExecutionRow> execution(const std::string& campaign_id, const std::string& hardware_id);
  // Writes every mutable field (group_index, state, attempt, command_id, times, output,
  // version_verified, reply_ok, version_at_send, updated_at) of each row in one transaction. not_found (and
  // nothing written) when a row has no existing execution.
  core::Status update_executions(const std::vector<ExecutionRow>& rows);
  // Records that attempt `attempt` of the device in the campaign uses command_id. conflict when that
  // attempt is already recorded or the command id is already used; not_found for an unknown campaign.
  core::Status record_attempt(const std::string& campaign_id, const std::string& hardware_id, int attempt,
                              const std::string& command_id);
  // record_attempt for every record, in one transaction (all or nothing, same errors).
  core::Status record_attempts(const std::vector<AttemptRecord>& records);
  // The attempt that uses command_id, if any.
  core::Result<std::optional<AttemptRef>> execution_by_command_id(const std::string& command_id);
  // All recorded attempts of one device in a campaign, ordered by attempt.
  core::Result<std::vector<std::string>> attempt_command_ids(const std::string& campaign_id,
                                                             const std::string& hardware_id);
  // Records a device's reply on the attempt that uses command_id (the attempt history; the execution
  // row is not touched): true when recorded; false when no attempt of hardware_id uses command_id or
  // the attempt already has a reply (the first reply is kept, as for the execution).
  core::Result<bool> record_attempt_reply(const std::string& hardware_id, const std::string& command_id,
                                          bool success, const std::string& output, core::TimeMs t);
  // Puts a device's reply into the campaign's inbox when command_id is the device's current attempt and
  // that execution is sent: true when added; false when not current, not sent, or already in the inbox.
  core::Result<bool> add_to_inbox(const std::string& hardware_id, const std::string& command_id, bool success,
                                  const std::string& output, core::TimeMs t);
  // The campaign's inbox, oldest reply first, at most limit (>= 1).
  core::Result<std::vector<InboxReply>> inbox(const std::string& campaign_id, int limit);
  // Deletes the campaign's inbox rows of these command ids (applied by the driving instance).
  core::Status clear_inbox(const std::string& campaign_id, const std::vector<std::string>& command_ids);
  // The device's queued and sent executions in every campaign (one indexed lookup: the partial index
  // campaign_executions_open_by_device), ordered by campaign id, at most limit (>= 1).
  core::Result<std::vector<OpenExecution>> open_executions(const std::string& hardware_id, int limit);
  // Puts a version report into its campaign's version inbox: one row per (campaign, device), a newer
  // report replaces an older one (an older one arriving late is ignored). not_found for an unknown
  // campaign.
  core::Status add_version_report(const VersionReport& report);
  // The campaign's version inbox, oldest report first, at most limit (>= 1).
  core::Result<std::vector<VersionReport>> version_reports(const std::string& campaign_id, int limit);
  // Deletes these reports, each only if its row is unchanged (a newer report of the device stays).
  core::Status clear_version_reports(const std::vector<VersionReport>& reports);
  // The attempt history of one device in a campaign, ordered by attempt.
  core::Result<std::vector<AttemptRow>> attempts(const std::string& campaign_id,
                                                 const std::string& hardware_id);

 private:
  Database& db_;
};

}  // namespace dispatch::storage
