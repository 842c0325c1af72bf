// CommandStore: commands sent to devices and their per-device deliveries.
//
// A command is one operator request; a delivery is that command for one device, keyed by
// (command_id, hardware_id) so a device can never get the same command twice. Delivery states:
// queued → sent → succeeded | failed, or expired (TTL passed without a reply) or canceled.
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

struct CommandRow {
  std::string id;
  std::string type;       // storage does not interpret: "exec", "firmware", ...
  std::string execution;  // "sync" / "async"
  std::string command;
  std::vector<std::string> arguments;
  std::string package_id;
  std::string description;
  std::optional<std::int64_t> ttl_s;
  std::optional<core::TimeMs> expires_at;
  core::TimeMs created_at = 0;
  std::optional<std::string> request_id;  // unique among commands when present
  std::optional<std::string> request_hash;
  bool canceled = false;
};

struct DeliveryRow {
  std::string command_id;
  std::string hardware_id;
  std::string command_line;  // the exact line published to the device
  std::string state = "queued";
  std::string output;
  bool trimmed = false;
  int attempts = 0;
  std::optional<core::TimeMs> sent_at;
  std::optional<core::TimeMs> replied_at;
  std::optional<core::TimeMs> expires_at;
  core::TimeMs created_at = 0;
};

using DeliveryKey = std::pair<std::string, std::string>;  // (command_id, hardware_id)

enum class ReplyOutcome {
  accepted,   // the delivery was queued or sent; the reply is now recorded
  duplicate,  // the delivery already has a reply (succeeded/failed); nothing changed
  unknown,    // no delivery of that command id to that device (unknown id or another device's)
  closed,     // the delivery expired or was canceled before the reply came; nothing changed
};

struct DeliveryCounts {
  std::int64_t queued = 0, sent = 0, succeeded = 0, failed = 0, expired = 0, canceled = 0;
  std::int64_t total() const { return queued + sent + succeeded + failed + expired + canceled; }
  bool operator==(const DeliveryCounts&) const = default;
};

// The targets of a large send not yet written as deliveries (schema v12; the service's expansion, see
// service/commands.h): the send commits its command, its first deliveries and this list in one
// transaction, so every target is decided durably; the rest are written chunk by chunk, in the list's
// order, and `expanded` says how many of them are deliveries already. The row goes when the last chunk
// is written or the command is canceled.
struct CommandTargets {
  std::string command_id;
  std::vector<std::string> hardware_ids;  // sorted, each once, none with a delivery when saved
  std::int64_t expanded = 0;              // a prefix of hardware_ids has deliveries
  std::string command_line;
  std::optional<core::TimeMs> expires_at;
  core::TimeMs created_at = 0;
  std::string owner;  // the instance that writes the list (empty: none named)
  std::int64_t remaining() const { return static_cast<std::int64_t>(hardware_ids.size()) - expanded; }
};

struct CommandQuery {
  int limit = 100;
  std::optional<std::string> after;        // cursor: only command ids strictly greater
  std::optional<std::string> hardware_id;  // only commands with a delivery to this device
};

class CommandStore {
 public:
  explicit CommandStore(Database& db) : db_(db) {}

  // Inserts the command and all its deliveries in one transaction (one reused prepared statement;
  // 50,000 rows take well under a second). Each delivery's command_id is forced to command.id.
  // Errors: conflict when the command id or request_id exists, or two deliveries name the same
  // device; nothing is written then.
  // owner (schema v7) is the instance id written on every delivery (the outbox rows it publishes; empty:
  // NULL, anybody's).
  core::Status create_with_deliveries(const CommandRow& command, const std::vector<DeliveryRow>& deliveries,
                                      const std::string& owner = {});
  // Saves a command's targets still to be written as deliveries (normally in the transaction that created
  // it), owned by targets.owner. conflict when the command has a list already.
  core::Status save_targets(const CommandTargets& targets);
  // Writes the next `rows` of the list (hardware_ids[expanded ..], one delivery each, in that order) and
  // advances its cursor, in one transaction; the list goes with its last chunk. The deliveries are owned
  // by targets.owner. false, and nothing written, when the list is not there any more as `targets`
  // describes it (cursor and owner: canceled, taken over by another instance, or expanded already).
  core::Result<bool> expand_targets(const CommandTargets& targets, const std::vector<DeliveryRow>& rows);
  // The lists owned by `from` (every list when from is nullopt), now owned by `to`, oldest first.
  core::Result<std::vector<CommandTargets>> take_over_targets(const std::optional<std::string>& from,
                                                              const std::string& to);
  // The command's list, if it has one.
  core::Result<std::optional<CommandTargets>> targets(const std::string& command_id);
  // The command created with request_id, if any.
  core::Result<std::optional<CommandRow>> find_by_request_id(const std::string& request_id);
  // not_found when no such command.
  core::Result<CommandRow> get(const std::string& id);
  // Commands ordered by id.
  core::Result<std::vector<CommandRow>> list(const CommandQuery& query);
  // Deliveries of a command ordered by hardware id, only those strictly after `after` when given, at
  // most limit (empty for an unknown command). The primary key (command_id, hardware_id) serves it.
  core::Result<std::vector<DeliveryRow>> deliveries(const std::string& command_id,
                                                    const std::optional<std::string>& after = std::nullopt,
                                                    int limit = 1000);
  // not_found when there is no such delivery.
  core::Result<DeliveryRow> delivery(const std::string& command_id, const std::string& hardware_id);
  // Queued deliveries not expired at now (expires_at absent or > now), oldest first, at most limit; with
  // owner, only that owner's and those without an owner (written before schema v7).
  core::Result<std::vector<DeliveryRow>> deliveries_to_publish(core::TimeMs now, int limit,
                                                               const std::string& owner = {});
  // Whether any queued delivery or list of targets is owned by owner (a cheap probe before a takeover).
  core::Result<bool> has_queued_owned_by(const std::string& owner);
  // Moves the oldest `limit` queued deliveries owned by `from` to `to` in one transaction and returns
  // them (expired ones included: the outbox drops those). The caller fences it on from's instance
  // lease (storage/leases.h) by running it inside its transaction. bad_request for an empty owner or
  // limit < 1.
  core::Result<std::vector<DeliveryRow>> take_over_queued(const std::string& from, const std::string& to,
                                                          int limit);
  // For each key whose delivery is queued or sent: state = sent, attempts + 1, sent_at = t. One
  // transaction of one statement per 512 keys; returns how many deliveries changed (others, e.g. an
  // answered one, are ignored; a key listed twice counts once).
  core::Result<int> mark_sent(const std::vector<DeliveryKey>& keys, core::TimeMs t);
  // Records a device's reply (see ReplyOutcome). Accepted only for a queued or sent delivery:
  // state = succeeded/failed, output, trimmed, replied_at = t.
  // When accepted and sent_at is given, *sent_at is the delivery's send time (t when the reply overtook
  // the broker's acknowledgement).
  core::Result<ReplyOutcome> record_reply(const std::string& command_id, const std::string& hardware_id,
                                          bool success, const std::string& output, bool trimmed,
                                          core::TimeMs t, core::TimeMs* sent_at = nullptr);
  // Queued or sent deliveries to hardware_id not expired at now, oldest first, at most limit.
  core::Result<std::vector<DeliveryRow>> pending_for_device(const std::string& hardware_id, core::TimeMs now,
                                                            int limit = 50);
  // Sent deliveries to hardware_id, not expired at now, last sent at or before sent_before, with
  // attempts < max_attempts: the ones to publish again. Oldest first.
  core::Result<std::vector<DeliveryRow>> redeliverable(const std::string& hardware_id, core::TimeMs now,
                                                       core::TimeMs sent_before, int max_attempts);
  // Marks expired every queued or sent delivery with expires_at <= now; returns how many.
  core::Result<int> expire(core::TimeMs now);
  // Marks the command canceled and its queued/sent deliveries canceled, and writes the targets of its
  // list not yet written as canceled deliveries (the list goes); returns how many deliveries changed or
  // were written so.
  // not_found when no such command.
  core::Result<int> cancel(const std::string& command_id);
  // Deliveries of the command per state (all zero for an unknown command); the targets of its list not
  // yet written count as queued.
  core::Result<DeliveryCounts> counts(const std::string& command_id);
  // Deliveries of every command per state (lists' targets as queued), and the number of commands
  // (metrics). One scan of each table: its cost grows with the rows kept (see retention).
  core::Result<DeliveryCounts> counts_all();
  core::Result<std::int64_t> command_count();

 private:
  // Inside the caller's transaction.
  void insert_deliveries(const std::string& command_id, const DeliveryRow* rows, std::size_t count,
                         const std::string& owner);

  Database& db_;
};

}  // namespace dispatch::storage
