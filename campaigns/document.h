// The campaign document of PROTOCOL §4: what an operator submits with campaigns/create, parsed and
// validated once, then stored (to_json) and read back (parse_campaign_document) unchanged.
//
// Decisions the protocol leaves open (documented in docs/protocol.md by the lead):
// - groups are numbered from 1 in conditions ("group":2 is the second group);
// - success.threshold_percent defaults to 95 (100 would stop a rollout on its first failure);
// - abort.min_finished defaults to 1, abort.action to pause;
// - only the "entry" stage exists for conditions;
// - a window may give not_before, not_after or both; it is the half-open interval [not_before, not_after).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"

namespace dispatch::campaigns {

using core::TimeMs;

enum class CampaignType { provisioning, exec, reboot, shutdown, ping, health };
enum class ExecutionMode { sync, async };
enum class AbortAction { pause, abort };
enum class ConditionStage { entry };
enum class ConditionOp { eq, ne, lt, lte, gt, gte };

std::string_view to_string(CampaignType t);
std::string_view to_string(ExecutionMode m);
std::string_view to_string(AbortAction a);
std::string_view to_string(ConditionOp op);

// One group: devices named by hardware id and devices carrying any of the tags.
struct GroupSpec {
  std::vector<std::string> hardware_ids;
  std::vector<std::string> tags;
  bool operator==(const GroupSpec&) const = default;
};

struct Ramp {
  std::int64_t start_per_minute = 0;
  double factor = 1.0;
  std::int64_t every_successes = 0;
  bool operator==(const Ramp&) const = default;
};

struct RatePolicy {
  std::int64_t per_minute = 60000;  // first sends in any 60 s
  std::optional<Ramp> ramp;
  bool operator==(const RatePolicy&) const = default;
};

struct SuccessPolicy {
  double threshold_percent = 95.0;  // succeeded / members of a group needed to go on
  bool verify_version = false;      // provisioning: a success also needs the version report
  bool operator==(const SuccessPolicy&) const = default;
};

struct AbortPolicy {
  double failure_percent = 0.0;  // (failed + timed_out) / finished above this triggers the action
  std::int64_t min_finished = 1;
  AbortAction action = AbortAction::pause;
  bool operator==(const AbortPolicy&) const = default;
};

struct RetryPolicy {
  int max = 0;
  std::int64_t backoff_s = 60;
  bool operator==(const RetryPolicy&) const = default;
};

struct Window {
  std::optional<TimeMs> not_before;
  std::optional<TimeMs> not_after;
  bool operator==(const Window&) const = default;
};

// An entry condition of a group: every member's property must satisfy `op value` (see engine.h).
struct Condition {
  int group = 1;  // 1-based
  ConditionStage stage = ConditionStage::entry;
  std::string property;  // e.g. "health.firmware"
  ConditionOp op = ConditionOp::eq;
  std::string value;       // a JSON number is kept in its JSON spelling ("10", "2.5")
  bool ignorable = false;  // a member that has not reported the property passes
  bool operator==(const Condition&) const = default;
};

struct CampaignDocument {
  std::string name;
  CampaignType type = CampaignType::exec;
  std::optional<std::string> package_id;  // provisioning; absent = latest for each device
  std::optional<std::string> command;     // exec
  std::vector<std::string> arguments;
  ExecutionMode execution = ExecutionMode::sync;
  std::vector<GroupSpec> groups;
  RatePolicy rate;
  std::int64_t batch_size = 1000;  // executions in state sent at once
  SuccessPolicy success;
  std::optional<AbortPolicy> abort;
  std::int64_t reply_timeout_s = 900;
  RetryPolicy retries;
  std::optional<Window> window;
  std::int64_t between_groups_pause_minutes = 0;
  std::vector<Condition> conditions;
  bool operator==(const CampaignDocument&) const = default;
};

// Validates and parses a campaign document. Unknown fields are ignored; absent optional fields take the
// defaults above. Every refusal is ErrorCode::bad_request with one of these messages (N, M 1-based):
//   "campaign document must be a JSON object", "name is required", "type is required",
//   "unknown type 'X'", "execution must be sync or async", "package_id must be a string or null",
//   "command is required for type exec", "arguments must be an array of strings", and for type exec
//   every refusal of protocol::validate_exec ("command must not contain a space", "argument N is empty",
//   "argument N must not contain a control character", …: what a device's split would not give back),
//   "groups must hold at least one group", "group N must be an object", "group N is empty",
//   "group N has an invalid hardware id 'X'", "group N has an invalid tag",
//   "F must be a number" / "F must be an integer" / "F must be an object" / "F must be a boolean"
//   (F the dotted field name), "rate.per_minute must be positive",
//   "rate.ramp.start_per_minute must be positive", "rate.ramp.factor must be at least 1",
//   "rate.ramp.every_successes must be positive", "batch_size must be positive",
//   "success.threshold_percent must be between 0 and 100",
//   "abort.failure_percent is required", "abort.failure_percent must be between 0 and 100",
//   "abort.min_finished must be at least 1", "abort.action must be pause or abort",
//   "reply_timeout_s must be positive", "retries.max must not be negative",
//   "retries.backoff_s must not be negative", "window.not_before is not an RFC 3339 time" (same for
//   not_after), "window.not_before must be before window.not_after",
//   "between_groups.pause_minutes must not be negative", "conditions must be an array",
//   "condition N must be an object", "condition N names group G but there are M groups",
//   "condition N has unknown stage 'X'", "condition N has unknown op 'X'", "condition N needs a property",
//   "condition N needs a string or number value".
core::Result<CampaignDocument> parse_campaign_document(const nlohmann::json& j);

// The stored form; parse_campaign_document(to_json(d)) == d for every parsed d.
nlohmann::json to_json(const CampaignDocument& d);

// RFC 3339 text of a time: protocol/core/time.h's format, with ".mmm" added when the milliseconds are
// not zero (so that a stored window reads back to the same millisecond). Only for the stored document:
// answers and events carry whole seconds (stats.h).
std::string format_time(TimeMs t);

}  // namespace dispatch::campaigns
