// The campaign scheduler: pure functions from an in-memory snapshot (what the database holds) and the
// time to the changes to commit and the commands to publish. No I/O, no clock, no randomness: command
// ids come from an injected IdGenerator. The caller commits every change of a TickResult in one
// transaction, and only then publishes its sends (PROTOCOL §4: durable before published).
//
// Rules (PROTOCOL §4), with the decisions the protocol leaves open:
// - Members are expanded once, at start (expand()). A device named twice, or in several groups, runs
//   once, in its first group. Explicit hardware ids that match no device are counted as missing in their
//   group; they are not members. A group's success percentage is succeeded / members; a group with no
//   members passes its gate.
// - Window: sends happen only in [not_before, not_after). Before not_before the campaign stays
//   scheduled; at or after not_after it is paused_by_workflow ("window closed").
// - Rate: at most rate_limit() first sends (attempt 1) in the half-open 60 s before now; retries are not
//   first sends. batch_size bounds the executions in state sent (retries included).
// - Timeouts: an execution sent at t with no accepted outcome is timed_out from t + reply_timeout_s on
//   (inclusive). With verify_version (provisioning), a success reply waits for the version report; if
//   it does not come in time the execution is timed_out.
// - verify_version: a report counts for the current attempt when it is a valid SemVer version and
//   - the campaign names a package (target_version set at start): it has the target's precedence;
//   - "latest" (no target): it is newer (SemVer precedence) than version_at_send, the version the
//     device had reported when the attempt was sent. A device that had reported none: any version.
//   So re-reporting the old version never completes an attempt.
// - Retries: a failure reply or a timeout with retries left puts the execution back to queued with
//   next_attempt_at = now + backoff_s; the next send mints a new command id (attempt + 1). Re-deliveries
//   of one attempt (pending/presence) reuse its id and are the caller's business.
// - Group gate: the next group starts once every member of the current group is terminal, its success
//   percentage >= threshold, between_groups.pause_minutes have passed since group_finished_at (the first
//   tick that saw the group done; inclusive), and every member of the next group satisfies that group's
//   entry conditions (a member without the property passes only if the condition is ignorable).
//   A failed threshold or condition pauses the campaign by workflow (pause_cause gate) with the reason;
//   an operator's resume approves that gate once (approved_gate) and the campaign goes on.
//   The last group done ends the campaign as completed (its shortfall, if any, is named in the reason).
// - Abort policy: counted over executions finished since the last resume from an abort pause
//   (abort_base_*): once finished >= min_finished and 100 * (failed + timed_out) / finished >
//   failure_percent, the campaign is paused_by_workflow (pause_cause abort) or aborted. Aborting cancels
//   queued executions; sent ones still take their reply or time out, without retries.
// - Terminate cancels queued and sent executions.
// - Conditions compare numbers as numbers (both sides parse fully as decimal numbers), else versions as
//   SemVer (both sides parse), else strings byte-wise; lte/gte include equality.
#pragma once

#include <array>
#include <cstdint>
#include <ext/pb_ds/assoc_container.hpp>
#include <ext/pb_ds/tree_policy.hpp>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "campaigns/document.h"
#include "campaigns/state.h"
#include "protocol/core/clock.h"
#include "protocol/core/result.h"

namespace dispatch::campaigns {

enum class ExecState { queued, sent, succeeded, failed, timed_out, canceled };
std::string_view to_string(ExecState s);
std::optional<ExecState> exec_state_from_string(std::string_view s);
// succeeded, failed, timed_out, canceled.
bool is_terminal(ExecState s);

// One device's execution within a campaign (one storage row).
struct Execution {
  std::string hardware_id;
  int group = 1;  // 1-based
  ExecState state = ExecState::queued;
  int attempt = 0;                        // attempts sent so far; 0 = never sent
  std::optional<std::string> command_id;  // the current (latest) attempt's id
  std::optional<TimeMs> first_sent_at;    // send time of attempt 1 (rate limit)
  std::optional<TimeMs> sent_at;          // send time of the current attempt (timeout)
  std::optional<TimeMs> next_attempt_at;  // queued retry: not before this time
  std::optional<TimeMs> finished_at;      // when it became terminal
  bool reply_ok = false;                  // success reply received, waiting for the version report
  bool version_reported = false;          // the package version was reported during this attempt
  // verify_version only. The device's last reported version as the engine knows it: the caller seeds it
  // when it loads the campaign (the device's stored reported version), on_version_reported keeps it.
  // Not stored with the execution.
  std::optional<std::string> reported_version;
  // reported_version when the current attempt was sent (stored with the execution): with no target
  // version, a report counts only when it is newer than this.
  std::optional<std::string> version_at_send;
  bool operator==(const Execution&) const = default;
};

// Why a paused_by_workflow campaign is paused; decides what an operator's resume approves.
enum class PauseCause { none, gate, abort, window };
std::string_view to_string(PauseCause c);
std::optional<PauseCause> pause_cause_from_string(std::string_view s);

// The campaign's mutable scalar fields (one storage row). A TickResult carries the whole new value.
struct CampaignProgress {
  State state = State::created;
  std::string reason;
  PauseCause pause_cause = PauseCause::none;
  int current_group = 0;  // 0 = group 1 not entered yet
  std::optional<TimeMs> started_at;
  std::optional<TimeMs> ended_at;
  std::optional<TimeMs> group_finished_at;  // the current group was first seen done
  int approved_gate = 0;                    // an operator approved entering this group
  std::int64_t abort_base_finished = 0;     // abort policy counts only what finished after these
  std::int64_t abort_base_failed = 0;
  bool operator==(const CampaignProgress&) const = default;
};

// A set of (time, position) pairs that counts its members within a time range in O(log n).
class TimeRank {
 public:
  void insert(TimeMs t, std::size_t i) { tree_.insert({t, i}); }
  void erase(TimeMs t, std::size_t i) { tree_.erase({t, i}); }
  void clear() { tree_.clear(); }
  std::size_t size() const { return tree_.size(); }
  // Members with after < time <= until.
  std::int64_t count_between(TimeMs after, TimeMs until) const;
  bool operator==(const TimeRank& o) const;

 private:
  // GNU's order-statistics tree (libstdc++): ranks by key in O(log n), which std::set cannot.
  using Tree = __gnu_pbds::tree<std::pair<TimeMs, std::size_t>, __gnu_pbds::null_type,
                                std::less<std::pair<TimeMs, std::size_t>>, __gnu_pbds::rb_tree_tag,
                                __gnu_pbds::tree_order_statistics_node_update>;
  Tree tree_;
};

// Counts and positions derived from a campaign's executions (positions are indexes into
// CampaignSnapshot::executions), so that a tick visits only the executions that can change at its time
// and statistics cost O(groups). It holds exactly what build() derives from the executions; apply()
// keeps it so with remove(old row) + add(new row) for each changed row.
class ExecutionIndex {
 public:
  static constexpr std::size_t k_states = 6;  // ExecState values
  struct Group {
    std::array<std::int64_t, k_states> by_state{};     // members by ExecState
    std::set<std::size_t> fresh;                       // queued, attempt 0, no next_attempt_at
    std::set<std::size_t> ready_retries;               // queued, attempt >= 1, no next_attempt_at
    std::set<std::pair<TimeMs, std::size_t>> waiting;  // queued with next_attempt_at, by that time
    std::int64_t members() const;
    bool operator==(const Group&) const = default;
  };

  // Replaces the contents with those of `executions`.
  void build(const std::vector<Execution>& executions);
  // Adds or removes the row at position i (remove takes the row as it was added).
  void add(std::size_t i, const Execution& e);
  void remove(std::size_t i, const Execution& e);

  bool built() const { return built_; }
  std::size_t size() const { return size_; }  // executions indexed by build()
  // Executions in state s, in `group` (1-based) or in all groups (0).
  std::int64_t count(ExecState s, int group = 0) const;
  // nullptr when no execution has this group.
  const Group* group(int g) const;
  // Executions with first_sent_at in (after, until].
  std::int64_t first_sends_between(TimeMs after, TimeMs until) const;
  // Succeeded, failed or timed_out executions with finished_at in (after, until].
  std::int64_t finished_between(TimeMs after, TimeMs until) const;
  // Sent executions with a sent_at, by sent_at (timeouts).
  const std::set<std::pair<TimeMs, std::size_t>>& in_flight() const { return in_flight_; }

  bool operator==(const ExecutionIndex& o) const;

 private:
  bool built_ = false;
  std::size_t size_ = 0;
  std::array<std::int64_t, k_states> by_state_{};
  std::map<int, Group> groups_;
  std::set<std::pair<TimeMs, std::size_t>> in_flight_;
  TimeRank first_sent_;
  TimeRank finished_;
};

struct CampaignSnapshot {
  std::string id;
  CampaignDocument doc;
  std::optional<TimeMs> created_at;
  CampaignProgress progress;
  std::vector<Execution> executions;
  // Device properties for entry conditions: hardware id -> ("health.firmware" -> "1.2.3").
  std::map<std::string, std::map<std::string, std::string>> device_properties;
  // missing_per_group[g - 1]: explicit hardware ids of group g that matched no device.
  std::vector<int> missing_per_group;
  // verify_version: the version the device must report (the package's). Absent: any report counts.
  std::optional<std::string> target_version;
  // Optional: hardware id -> position in executions (reindex()). Used by on_reply and
  // on_version_reported when its size matches executions; otherwise they scan.
  std::unordered_map<std::string, std::size_t> index_by_hardware_id;

  // Optional: counts and positions of the executions (build_index(); apply() keeps it current). tick(),
  // on_action() and compute() use it when index_current(); otherwise they count from the executions.
  // Whoever changes executions other than through apply() must call build_index() again.
  ExecutionIndex index;

  void reindex() {
    index_by_hardware_id.clear();
    for (std::size_t i = 0; i < executions.size(); ++i) index_by_hardware_id[executions[i].hardware_id] = i;
  }
  // reindex() plus `index`.
  void build_index() {
    reindex();
    index.build(executions);
  }
  bool index_current() const { return index.built() && index.size() == executions.size(); }
};

// The first time a new attempt is published: publish after the changes are committed.
struct Send {
  std::string hardware_id;
  std::string command_id;
  int attempt = 0;
  bool operator==(const Send&) const = default;
};

struct TickResult {
  std::optional<CampaignProgress> progress;  // set when any campaign field changed (the full new row)
  std::vector<Execution> changes;            // full new rows of changed executions
  std::vector<Send> sends;
  bool empty() const { return !progress && changes.empty() && sends.empty(); }
};

class IdGenerator {
 public:
  virtual ~IdGenerator() = default;
  virtual std::string next_command_id() = 0;
};

// Which devices exist and which carry a tag (the device store behind an interface).
class MemberLookup {
 public:
  virtual ~MemberLookup() = default;
  virtual bool device_exists(const std::string& hardware_id) const = 0;
  virtual std::vector<std::string> devices_with_tag(const std::string& tag) const = 0;
};

struct Expansion {
  std::vector<Execution> executions;     // queued, attempt 0, in group order
  std::vector<int> missing_per_group;    // one entry per group
  std::vector<std::string> missing_ids;  // the missing explicit ids, in document order
};

// Expands the document's groups into executions: hardware ids first, then each tag's devices in the
// lookup's order; the first occurrence of a device wins.
Expansion expand(const CampaignDocument& doc, const MemberLookup& lookup);

// The first-send limit per minute now: per_minute, or with a ramp
// min(per_minute, floor(start_per_minute * factor ^ floor(successes / every_successes))).
std::int64_t rate_limit(const RatePolicy& rate, std::int64_t successes);

// Evaluates `actual op expected` with the comparison rules above.
bool condition_holds(const std::string& actual, ConditionOp op, const std::string& expected);

// Commits `r` into `snapshot` as the store does: the progress row, and each changed execution matched by
// hardware id (changes of unknown hardware ids are ignored). Keeps `index` current when it was.
void apply(CampaignSnapshot& snapshot, const TickResult& r);

// One scheduler step at `now`: window, timeouts and retries, abort policy, group gate and completion,
// then new sends. Returns an empty result for created, paused_by_user and terminal campaigns (apart from
// timing out still-sent executions of paused or aborted campaigns).
TickResult tick(const CampaignSnapshot& snapshot, TimeMs now, IdGenerator& ids);

// How a reply or version report was taken.
enum class Disposition {
  applied,      // changed the execution
  not_current,  // unknown device, or a superseded attempt's id: record it, change nothing
  duplicate,    // the attempt already has its outcome
};

struct ReplyResult {
  Disposition disposition = Disposition::not_current;
  TickResult result;
};

// A device's reply to `command_id`. Success: succeeded (or, with verify_version and no version report
// yet, waiting for it). Failure: queued for a retry if retries remain and the campaign is not terminal,
// else failed.
ReplyResult on_reply(const CampaignSnapshot& snapshot, const std::string& hardware_id,
                     const std::string& command_id, bool success, TimeMs now);

// A device reported `version` (metadata topic). For a verify_version campaign a valid SemVer one becomes the
// execution's reported_version (whatever its state: the next send records it as version_at_send), and
// it counts for a sent execution by the verify_version rule above; a counted report completes the
// execution if its success reply already came. applied when the execution changed (a new
// reported_version alone is a change), duplicate when the attempt already had a counted report,
// not_current otherwise (no such member, not verify_version, or a report that does not count).
ReplyResult on_version_reported(const CampaignSnapshot& snapshot, const std::string& hardware_id,
                                const std::string& version, TimeMs now);

// An operator action (state.h) with its side effects: start -> scheduled (the caller also stores the
// expand() result); pause -> paused_by_user; resume -> running, or scheduled before not_before,
// approving the gate or resetting the abort count that paused it; terminate -> terminated_by_user,
// queued and sent executions canceled; delete -> no change (ok means the caller may delete).
// Errors: ErrorCode::conflict as apply().
core::Result<TickResult> on_action(const CampaignSnapshot& snapshot, Action action, TimeMs now);

}  // namespace dispatch::campaigns
