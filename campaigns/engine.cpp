#include "campaigns/engine.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <unordered_set>

#include "protocol/core/semver.h"

namespace dispatch::campaigns {
namespace {

constexpr TimeMs k_minute_ms = 60'000;

std::size_t state_slot(ExecState s) { return static_cast<std::size_t>(s); }

// Counts of one group (or all) from the index: members, succeeded, failed (failed + timed_out), sent and
// done (terminal).
struct Counts {
  std::int64_t members = 0, succeeded = 0, failed = 0, sent = 0, done = 0;
};

Counts counts_of(const std::array<std::int64_t, ExecutionIndex::k_states>& by_state) {
  Counts c;
  for (auto n : by_state) c.members += n;
  c.succeeded = by_state[state_slot(ExecState::succeeded)];
  c.failed = by_state[state_slot(ExecState::failed)] + by_state[state_slot(ExecState::timed_out)];
  c.sent = by_state[state_slot(ExecState::sent)];
  c.done = c.succeeded + c.failed + by_state[state_slot(ExecState::canceled)];
  return c;
}

// The snapshot plus the rows changed so far. Unchanged rows are read from the snapshot, so that a reply
// costs O(changed rows) and not a copy of the campaign; the result holds each changed row once, in
// storage order. Counts come from the snapshot's index corrected by the changed rows, so they cost
// O(changed rows) too; a snapshot without a current index gets one built here, on first use.
class Work {
 public:
  explicit Work(const CampaignSnapshot& s) : progress(s.progress), snap_(s) {}

  const ExecutionIndex& index() {
    if (snap_.index_current()) return snap_.index;
    if (!local_) {
      local_.emplace();
      local_->build(snap_.executions);
    }
    return *local_;
  }

  // Members of `group` (0: all) by state, as changed so far.
  Counts count(int group) {
    std::array<std::int64_t, ExecutionIndex::k_states> by_state{};
    for (std::size_t k = 0; k < by_state.size(); ++k)
      by_state[k] = index().count(static_cast<ExecState>(k), group);
    for (const auto& [i, e] : touched_) {
      const Execution& old = snap_.executions[i];
      if (group == 0 || old.group == group) --by_state[state_slot(old.state)];
      if (group == 0 || e.group == group) ++by_state[state_slot(e.state)];
    }
    return counts_of(by_state);
  }

  // Executions with first_sent_at in (after, until], as changed so far.
  std::int64_t first_sends_between(TimeMs after, TimeMs until) {
    std::int64_t n = index().first_sends_between(after, until);
    auto in = [&](const Execution& e) {
      return e.first_sent_at && *e.first_sent_at > after && *e.first_sent_at <= until;
    };
    for (const auto& [i, e] : touched_) n += (in(e) ? 1 : 0) - (in(snap_.executions[i]) ? 1 : 0);
    return n;
  }

  std::vector<std::size_t> touched_positions() const {
    std::vector<std::size_t> out;
    out.reserve(touched_.size());
    for (const auto& [i, e] : touched_) out.push_back(i);
    return out;
  }

  std::size_t size() const { return snap_.executions.size(); }
  const Execution& at(std::size_t i) const {
    auto it = touched_.find(i);
    return it == touched_.end() ? snap_.executions[i] : it->second;
  }
  Execution& touch(std::size_t i) { return touched_.try_emplace(i, snap_.executions[i]).first->second; }

  TickResult result() const {
    TickResult r;
    if (!(progress == snap_.progress)) r.progress = progress;
    for (const auto& [i, e] : touched_) {
      if (!(e == snap_.executions[i])) r.changes.push_back(e);
    }
    r.sends = sends;
    return r;
  }

  const CampaignSnapshot& snap() const { return snap_; }
  const CampaignDocument& doc() const { return snap_.doc; }

  CampaignProgress progress;
  std::vector<Send> sends;

 private:
  const CampaignSnapshot& snap_;
  std::map<std::size_t, Execution> touched_;
  std::optional<ExecutionIndex> local_;
};

std::string percent_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string threshold_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

bool needs_version(const CampaignDocument& d) {
  return d.success.verify_version && d.type == CampaignType::provisioning;
}

// The execution's attempt ended with `outcome` (failed or timed_out): retry it or finish it.
void finish_or_retry(Work& w, std::size_t i, ExecState outcome, TimeMs now, bool allow_retry) {
  Execution& e = w.touch(i);
  e.reply_ok = false;
  if (allow_retry && e.attempt < 1 + w.doc().retries.max) {
    e.state = ExecState::queued;
    e.next_attempt_at = now + w.doc().retries.backoff_s * 1000;
    e.version_reported = false;
    return;
  }
  e.state = outcome;
  e.finished_at = now;
}

void cancel_open(Work& w, TimeMs now, bool include_sent) {
  for (std::size_t i = 0; i < w.size(); ++i) {
    const ExecState s = w.at(i).state;
    if (s == ExecState::queued || (include_sent && s == ExecState::sent)) {
      Execution& e = w.touch(i);
      e.state = ExecState::canceled;
      e.finished_at = now;
      e.next_attempt_at.reset();
      e.reply_ok = false;
    }
  }
}

// Runs first in a tick (nothing touched yet): the index's in-flight rows, oldest first, are exactly the
// sent rows, so the scan stops at the first one still within its timeout.
void process_timeouts(Work& w, TimeMs now, bool allow_retry) {
  const TimeMs timeout_ms = w.doc().reply_timeout_s * 1000;
  std::vector<std::size_t> due;
  for (const auto& [sent_at, i] : w.index().in_flight()) {
    if (now - sent_at < timeout_ms) break;
    due.push_back(i);
  }
  for (std::size_t i : due) {
    const Execution& e = w.at(i);
    if (e.state != ExecState::sent || !e.sent_at || now - *e.sent_at < timeout_ms) continue;
    finish_or_retry(w, i, ExecState::timed_out, now, allow_retry);
  }
}

Counts count(Work& w, int group /* 0 = all */) { return w.count(group); }

// Finished for the abort policy: an outcome that is final and not a cancellation.
std::pair<std::int64_t, std::int64_t> finished_and_failed(Work& w) {
  const Counts c = w.count(0);
  return {c.succeeded + c.failed, c.failed};
}

bool check_abort(Work& w, TimeMs now) {
  if (!w.doc().abort) return false;
  const AbortPolicy& a = *w.doc().abort;
  auto [finished, failed] = finished_and_failed(w);
  finished -= w.progress.abort_base_finished;
  failed -= w.progress.abort_base_failed;
  if (finished <= 0 || finished < a.min_finished) return false;
  const double pct = 100.0 * static_cast<double>(failed) / static_cast<double>(finished);
  if (!(pct > a.failure_percent)) return false;
  const std::string why = "failure " + percent_text(pct) + "% above abort threshold " +
                          threshold_text(a.failure_percent) + "% (" + std::to_string(failed) + " of " +
                          std::to_string(finished) + " finished)";
  if (a.action == AbortAction::pause) {
    w.progress.state = State::paused_by_workflow;
    w.progress.pause_cause = PauseCause::abort;
    w.progress.reason = why;
  } else {
    w.progress.state = State::aborted;
    w.progress.pause_cause = PauseCause::none;
    w.progress.reason = "aborted: " + why;
    w.progress.ended_at = now;
    cancel_open(w, now, /*include_sent=*/false);
  }
  return true;
}

// The reason the entry conditions of `group` fail, or nullopt when they hold for every member.
std::optional<std::string> failing_conditions(Work& w, int group) {
  for (const auto& c : w.doc().conditions) {
    if (c.group != group) continue;
    std::int64_t failing = 0, members = 0;
    std::string first;
    for (std::size_t i = 0; i < w.size(); ++i) {
      const Execution& e = w.at(i);
      if (e.group != group) continue;
      ++members;
      bool ok = c.ignorable;
      auto dev = w.snap().device_properties.find(e.hardware_id);
      if (dev != w.snap().device_properties.end()) {
        auto prop = dev->second.find(c.property);
        if (prop != dev->second.end() && !prop->second.empty())
          ok = condition_holds(prop->second, c.op, c.value);
      }
      if (!ok) {
        if (failing == 0) first = e.hardware_id;
        ++failing;
      }
    }
    if (failing > 0) {
      return "group " + std::to_string(group) + " entry condition " + c.property + " " +
             std::string(to_string(c.op)) + " " + c.value + " not met by " + std::to_string(failing) +
             " of " + std::to_string(members) + " devices (first: " + first + ")";
    }
  }
  return std::nullopt;
}

void pause_by_gate(Work& w, std::string why) {
  w.progress.state = State::paused_by_workflow;
  w.progress.pause_cause = PauseCause::gate;
  w.progress.reason = std::move(why);
}

void advance_groups(Work& w, TimeMs now) {
  const int groups = static_cast<int>(w.doc().groups.size());
  CampaignProgress& p = w.progress;
  while (p.state == State::running) {
    const int g = p.current_group;
    if (g >= 1) {
      const Counts c = count(w, g);
      if (c.done < c.members) return;
      if (!p.group_finished_at) p.group_finished_at = now;
      const double pct = c.members == 0 ? 100.0 : 100.0 * static_cast<double>(c.succeeded) / c.members;
      const double threshold = w.doc().success.threshold_percent;
      const std::string shortfall = "group " + std::to_string(g) + " success " + percent_text(pct) +
                                    "% below threshold " + threshold_text(threshold) + "%";
      if (g >= groups) {
        p.state = State::completed;
        p.ended_at = now;
        p.pause_cause = PauseCause::none;
        p.reason = pct < threshold ? "completed; " + shortfall : "completed";
        return;
      }
      if (pct < threshold && p.approved_gate < g + 1) return pause_by_gate(w, shortfall);
      if (now < *p.group_finished_at + w.doc().between_groups_pause_minutes * k_minute_ms) return;
    }
    const int next = g + 1;
    if (p.approved_gate < next) {
      if (auto why = failing_conditions(w, next)) return pause_by_gate(w, *why);
    }
    p.current_group = next;
    p.group_finished_at.reset();
    p.reason.clear();
    p.pause_cause = PauseCause::none;
  }
}

void send_new_attempts(Work& w, TimeMs now, IdGenerator& ids) {
  const CampaignProgress& p = w.progress;
  if (p.state != State::running || p.current_group < 1) return;
  const Counts all = count(w, 0);
  std::int64_t capacity = w.doc().batch_size - all.sent;
  if (capacity <= 0) return;
  std::int64_t allowance =
      rate_limit(w.doc().rate, all.succeeded) - w.first_sends_between(now - k_minute_ms, now);
  // The candidates, in storage order, are the union of two ascending streams: never-sent rows (taken
  // only while the rate allows first sends: once it does not, none of them can go this tick) and the
  // rest (retries due now and rows this tick changed). Every row outside both fails the test below.
  const ExecutionIndex::Group* g = w.index().group(p.current_group);
  std::vector<std::size_t> others = w.touched_positions();
  if (g != nullptr) {
    others.insert(others.end(), g->ready_retries.begin(), g->ready_retries.end());
    for (const auto& [at, i] : g->waiting) {
      if (at > now) break;
      others.push_back(i);
    }
  }
  std::sort(others.begin(), others.end());
  others.erase(std::unique(others.begin(), others.end()), others.end());
  static const std::set<std::size_t> none;
  const std::set<std::size_t>& fresh = g != nullptr ? g->fresh : none;
  auto next_fresh = fresh.begin();
  std::size_t next_other = 0;
  while (capacity > 0) {
    const bool have_fresh = next_fresh != fresh.end() && allowance > 0;
    const bool have_other = next_other < others.size();
    if (!have_fresh && !have_other) break;
    std::size_t i = 0;
    if (have_fresh && (!have_other || *next_fresh <= others[next_other])) {
      i = *next_fresh++;
      if (have_other && others[next_other] == i) ++next_other;
    } else {
      i = others[next_other++];
    }
    const Execution& e = w.at(i);
    if (e.group != p.current_group || e.state != ExecState::queued) continue;
    if (e.next_attempt_at && *e.next_attempt_at > now) continue;
    if (e.attempt == 0) {
      if (allowance <= 0) continue;  // retries may still go: they are not first sends
      --allowance;
    }
    Execution& x = w.touch(i);
    x.attempt += 1;
    x.command_id = ids.next_command_id();
    x.state = ExecState::sent;
    x.sent_at = now;
    if (x.attempt == 1) x.first_sent_at = now;
    x.next_attempt_at.reset();
    x.reply_ok = false;
    x.version_reported = false;
    if (needs_version(w.doc())) x.version_at_send = x.reported_version;
    w.sends.push_back(Send{x.hardware_id, *x.command_id, x.attempt});
    --capacity;
  }
}

// The verify_version rule (engine.h): the exact target when there is one, else newer than the version
// the device had when the attempt was sent (any version when it had none).
bool version_counts(const std::string& version, const std::optional<std::string>& target,
                    const std::optional<std::string>& at_send) {
  auto reported = core::parse_semver(version);
  if (!reported) return false;
  if (target) {
    auto wanted = core::parse_semver(*target);
    return wanted.ok() && core::same_precedence(*reported, *wanted);
  }
  if (!at_send) return true;
  auto before = core::parse_semver(*at_send);
  return !before.ok() || *reported > *before;
}

std::optional<std::size_t> find_execution(const CampaignSnapshot& s, const std::string& hw) {
  if (s.index_by_hardware_id.size() == s.executions.size()) {
    auto it = s.index_by_hardware_id.find(hw);
    if (it == s.index_by_hardware_id.end() || it->second >= s.executions.size() ||
        s.executions[it->second].hardware_id != hw) {
      return std::nullopt;
    }
    return it->second;
  }
  for (std::size_t i = 0; i < s.executions.size(); ++i) {
    if (s.executions[i].hardware_id == hw) return i;
  }
  return std::nullopt;
}

std::optional<double> as_number(const std::string& s) {
  double v = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (s.empty() || ec != std::errc() || ptr != end || !std::isfinite(v)) return std::nullopt;
  return v;
}

template <class T>
int three_way(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

}  // namespace

std::string_view to_string(ExecState s) {
  switch (s) {
    case ExecState::queued:
      return "queued";
    case ExecState::sent:
      return "sent";
    case ExecState::succeeded:
      return "succeeded";
    case ExecState::failed:
      return "failed";
    case ExecState::timed_out:
      return "timed_out";
    case ExecState::canceled:
      return "canceled";
  }
  return "queued";
}

std::optional<ExecState> exec_state_from_string(std::string_view s) {
  for (ExecState e : {ExecState::queued, ExecState::sent, ExecState::succeeded, ExecState::failed,
                      ExecState::timed_out, ExecState::canceled}) {
    if (to_string(e) == s) return e;
  }
  return std::nullopt;
}

bool is_terminal(ExecState s) { return s != ExecState::queued && s != ExecState::sent; }

std::string_view to_string(PauseCause c) {
  switch (c) {
    case PauseCause::none:
      return "none";
    case PauseCause::gate:
      return "gate";
    case PauseCause::abort:
      return "abort";
    case PauseCause::window:
      return "window";
  }
  return "none";
}

std::optional<PauseCause> pause_cause_from_string(std::string_view s) {
  for (PauseCause c : {PauseCause::none, PauseCause::gate, PauseCause::abort, PauseCause::window}) {
    if (to_string(c) == s) return c;
  }
  return std::nullopt;
}

Expansion expand(const CampaignDocument& doc, const MemberLookup& lookup) {
  Expansion out;
  std::unordered_set<std::string> seen;
  int group = 0;
  std::set<std::pair<int, std::string>> missing_seen;
  for (const auto& spec : doc.groups) {
    ++group;
    int missing = 0;
    auto add = [&](const std::string& hw) {
      if (!seen.insert(hw).second) return;
      Execution e;
      e.hardware_id = hw;
      e.group = group;
      out.executions.push_back(std::move(e));
    };
    for (const auto& hw : spec.hardware_ids) {
      if (!lookup.device_exists(hw)) {
        // Counted once per group even when named twice there.
        if (missing_seen.emplace(group, hw).second) {
          ++missing;
          out.missing_ids.push_back(hw);
        }
        continue;
      }
      add(hw);
    }
    for (const auto& tag : spec.tags) {
      for (const auto& hw : lookup.devices_with_tag(tag)) add(hw);
    }
    out.missing_per_group.push_back(missing);
  }
  return out;
}

std::int64_t rate_limit(const RatePolicy& rate, std::int64_t successes) {
  if (!rate.ramp) return rate.per_minute;
  const Ramp& r = *rate.ramp;
  const std::int64_t steps = r.every_successes > 0 ? successes / r.every_successes : 0;
  double limit = static_cast<double>(r.start_per_minute);
  for (std::int64_t i = 0; i < steps && limit < static_cast<double>(rate.per_minute) && r.factor > 1.0; ++i) {
    limit *= r.factor;
  }
  if (limit >= static_cast<double>(rate.per_minute)) return rate.per_minute;
  return static_cast<std::int64_t>(std::floor(limit));
}

bool condition_holds(const std::string& actual, ConditionOp op, const std::string& expected) {
  int cmp = 0;
  auto a_num = as_number(actual);
  auto e_num = as_number(expected);
  if (a_num && e_num) {
    cmp = three_way(*a_num, *e_num);
  } else {
    auto a_ver = core::parse_semver(actual);
    auto e_ver = core::parse_semver(expected);
    if (a_ver.ok() && e_ver.ok()) {
      cmp = core::compare(*a_ver, *e_ver);
      cmp = cmp < 0 ? -1 : (cmp > 0 ? 1 : 0);
    } else {
      cmp = three_way(actual, expected);
    }
  }
  switch (op) {
    case ConditionOp::eq:
      return cmp == 0;
    case ConditionOp::ne:
      return cmp != 0;
    case ConditionOp::lt:
      return cmp < 0;
    case ConditionOp::lte:
      return cmp <= 0;
    case ConditionOp::gt:
      return cmp > 0;
    case ConditionOp::gte:
      return cmp >= 0;
  }
  return false;
}

std::int64_t TimeRank::count_between(TimeMs after, TimeMs until) const {
  if (until <= after) return 0;
  // order_of_key counts the keys below its argument; (t, 0) is the first key at time t.
  auto below = [&](TimeMs t) { return static_cast<std::int64_t>(tree_.order_of_key({t, 0})); };
  const TimeMs max = std::numeric_limits<TimeMs>::max();
  const std::int64_t up_to_until = until == max ? static_cast<std::int64_t>(tree_.size()) : below(until + 1);
  const std::int64_t up_to_after = after == max ? static_cast<std::int64_t>(tree_.size()) : below(after + 1);
  return up_to_until - up_to_after;
}

bool TimeRank::operator==(const TimeRank& o) const {
  return tree_.size() == o.tree_.size() && std::equal(tree_.begin(), tree_.end(), o.tree_.begin());
}

std::int64_t ExecutionIndex::Group::members() const {
  std::int64_t n = 0;
  for (auto c : by_state) n += c;
  return n;
}

void ExecutionIndex::build(const std::vector<Execution>& executions) {
  by_state_ = {};
  groups_.clear();
  in_flight_.clear();
  first_sent_.clear();
  finished_.clear();
  for (std::size_t i = 0; i < executions.size(); ++i) add(i, executions[i]);
  size_ = executions.size();
  built_ = true;
}

void ExecutionIndex::add(std::size_t i, const Execution& e) {
  ++by_state_[state_slot(e.state)];
  Group& g = groups_[e.group];
  ++g.by_state[state_slot(e.state)];
  if (e.state == ExecState::queued) {
    if (e.next_attempt_at) {
      g.waiting.emplace(*e.next_attempt_at, i);
    } else if (e.attempt == 0) {
      g.fresh.insert(i);
    } else {
      g.ready_retries.insert(i);
    }
  }
  if (e.state == ExecState::sent && e.sent_at) in_flight_.emplace(*e.sent_at, i);
  if (e.first_sent_at) first_sent_.insert(*e.first_sent_at, i);
  if (is_terminal(e.state) && e.state != ExecState::canceled && e.finished_at)
    finished_.insert(*e.finished_at, i);
}

void ExecutionIndex::remove(std::size_t i, const Execution& e) {
  --by_state_[state_slot(e.state)];
  auto it = groups_.find(e.group);
  if (it != groups_.end()) {
    Group& g = it->second;
    --g.by_state[state_slot(e.state)];
    if (e.state == ExecState::queued) {
      if (e.next_attempt_at) {
        g.waiting.erase({*e.next_attempt_at, i});
      } else if (e.attempt == 0) {
        g.fresh.erase(i);
      } else {
        g.ready_retries.erase(i);
      }
    }
    // A group exists while it has members, as in build().
    if (g.members() == 0) groups_.erase(it);
  }
  if (e.state == ExecState::sent && e.sent_at) in_flight_.erase({*e.sent_at, i});
  if (e.first_sent_at) first_sent_.erase(*e.first_sent_at, i);
  if (is_terminal(e.state) && e.state != ExecState::canceled && e.finished_at)
    finished_.erase(*e.finished_at, i);
}

std::int64_t ExecutionIndex::count(ExecState s, int group) const {
  if (group == 0) return by_state_[state_slot(s)];
  const Group* g = this->group(group);
  return g == nullptr ? 0 : g->by_state[state_slot(s)];
}

const ExecutionIndex::Group* ExecutionIndex::group(int g) const {
  auto it = groups_.find(g);
  return it == groups_.end() ? nullptr : &it->second;
}

std::int64_t ExecutionIndex::first_sends_between(TimeMs after, TimeMs until) const {
  return first_sent_.count_between(after, until);
}

std::int64_t ExecutionIndex::finished_between(TimeMs after, TimeMs until) const {
  return finished_.count_between(after, until);
}

bool ExecutionIndex::operator==(const ExecutionIndex& o) const {
  return built_ == o.built_ && size_ == o.size_ && by_state_ == o.by_state_ && groups_ == o.groups_ &&
         in_flight_ == o.in_flight_ && first_sent_ == o.first_sent_ && finished_ == o.finished_;
}

void apply(CampaignSnapshot& snapshot, const TickResult& r) {
  if (r.progress) snapshot.progress = *r.progress;
  const bool indexed = snapshot.index_current();
  for (const auto& c : r.changes) {
    auto i = find_execution(snapshot, c.hardware_id);
    if (!i) continue;
    Execution& e = snapshot.executions[*i];
    if (indexed) snapshot.index.remove(*i, e);
    e = c;
    if (indexed) snapshot.index.add(*i, e);
  }
}

TickResult tick(const CampaignSnapshot& snapshot, TimeMs now, IdGenerator& ids) {
  Work w(snapshot);
  CampaignProgress& p = w.progress;
  const State s = p.state;
  if (s == State::created || s == State::completed || s == State::terminated_by_user) return {};
  process_timeouts(w, now, /*allow_retry=*/s != State::aborted);
  if (s != State::scheduled && s != State::running) return w.result();

  const auto& window = w.doc().window;
  if (window && window->not_before && now < *window->not_before) {
    p.state = State::scheduled;
    return w.result();
  }
  if (window && window->not_after && now >= *window->not_after) {
    p.state = State::paused_by_workflow;
    p.pause_cause = PauseCause::window;
    p.reason = "window closed";
    return w.result();
  }
  if (p.state == State::scheduled) {
    p.state = State::running;
    p.reason.clear();
    if (!p.started_at) p.started_at = now;
  }
  if (check_abort(w, now)) return w.result();
  advance_groups(w, now);
  send_new_attempts(w, now, ids);
  return w.result();
}

ReplyResult on_reply(const CampaignSnapshot& snapshot, const std::string& hardware_id,
                     const std::string& command_id, bool success, TimeMs now) {
  auto i = find_execution(snapshot, hardware_id);
  if (!i) return {Disposition::not_current, {}};
  const Execution& current = snapshot.executions[*i];
  if (current.command_id != command_id) return {Disposition::not_current, {}};
  if (current.state != ExecState::sent || current.reply_ok) return {Disposition::duplicate, {}};
  Work w(snapshot);
  if (success) {
    Execution& e = w.touch(*i);
    if (needs_version(w.doc()) && !e.version_reported) {
      e.reply_ok = true;
    } else {
      e.state = ExecState::succeeded;
      e.finished_at = now;
    }
  } else {
    finish_or_retry(w, *i, ExecState::failed, now, !is_terminal(snapshot.progress.state));
  }
  return {Disposition::applied, w.result()};
}

ReplyResult on_version_reported(const CampaignSnapshot& snapshot, const std::string& hardware_id,
                                const std::string& version, TimeMs now) {
  if (!needs_version(snapshot.doc)) return {Disposition::not_current, {}};
  auto i = find_execution(snapshot, hardware_id);
  // Only a SemVer version can be compared later, so nothing else is recorded.
  if (!i || !core::parse_semver(version)) return {Disposition::not_current, {}};
  const Execution& current = snapshot.executions[*i];
  const bool counts = current.state == ExecState::sent &&
                      version_counts(version, snapshot.target_version, current.version_at_send);
  const bool new_version = current.reported_version != version;
  if (!new_version && (!counts || current.version_reported)) {
    return {counts ? Disposition::duplicate : Disposition::not_current, {}};
  }
  Work w(snapshot);
  Execution& e = w.touch(*i);
  e.reported_version = version;
  if (counts && !e.version_reported) {
    e.version_reported = true;
    if (e.reply_ok) {
      e.reply_ok = false;
      e.state = ExecState::succeeded;
      e.finished_at = now;
    }
  }
  return {Disposition::applied, w.result()};
}

core::Result<TickResult> on_action(const CampaignSnapshot& snapshot, Action action, TimeMs now) {
  auto next = apply(snapshot.progress.state, action);
  if (!next) return next.error();
  Work w(snapshot);
  CampaignProgress& p = w.progress;
  switch (action) {
    case Action::start:
      p.state = *next;
      p.reason.clear();
      break;
    case Action::pause:
      p.state = *next;
      p.reason = "paused by user";
      break;
    case Action::resume: {
      if (p.state == State::paused_by_workflow && p.pause_cause == PauseCause::gate) {
        p.approved_gate = p.current_group + 1;
      }
      if (p.state == State::paused_by_workflow && p.pause_cause == PauseCause::abort) {
        auto [finished, failed] = finished_and_failed(w);
        p.abort_base_finished = finished;
        p.abort_base_failed = failed;
      }
      const auto& window = w.doc().window;
      p.state = window && window->not_before && now < *window->not_before ? State::scheduled : *next;
      p.pause_cause = PauseCause::none;
      p.reason.clear();
      break;
    }
    case Action::terminate:
      p.state = *next;
      p.pause_cause = PauseCause::none;
      p.reason = "terminated by user";
      p.ended_at = now;
      cancel_open(w, now, /*include_sent=*/true);
      break;
    case Action::remove:
      break;
  }
  return w.result();
}

}  // namespace dispatch::campaigns
