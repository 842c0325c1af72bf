// CampaignService: the campaign engine (campaigns/) wired to SQLite, the outbox and the events.
//
// Memory mirrors the database: every active campaign is held as an engine snapshot, loaded from the rows
// at start and changed only by engine results. A result is committed (one transaction: campaign row,
// changed executions, the command id of each new attempt) before it is applied to memory and before any
// send it carries is queued, so what a device or an observer can see always exists on disk first. Replies
// are applied to memory at once (the engine needs them to deduplicate) and written in batches by flush()
// or by the next commit of their campaign, whichever comes first; no effect of a reply (a retry, the next
// group, an event) is published before that write, because ticks and events commit first.
#include "service/campaign_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "campaigns/document.h"
#include "campaigns/engine.h"
#include "campaigns/state.h"
#include "campaigns/stats.h"
#include "protocol/command_line.h"
#include "protocol/core/secrets.h"
#include "protocol/errors.h"
#include "protocol/ids.h"
#include "protocol/json_request.h"
#include "service/cluster.h"
#include "service/failpoint.h"
#include "service/idempotency.h"
#include "service/logging.h"
#include "service/outbox.h"
#include "service/router.h"
#include "storage/campaigns.h"
#include "storage/database.h"
#include "storage/devices.h"
#include "storage/leases.h"
#include "storage/packages.h"

namespace dispatch::service {

using campaigns::Action;
using campaigns::CampaignSnapshot;
using campaigns::ExecState;
using campaigns::Execution;
using campaigns::State;
using campaigns::TickResult;
using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using core::TimeMs;

namespace {

// The line an attempt publishes: the campaign's command line with the attempt's command id.
core::Result<std::string> line_for(protocol::CommandLine line, const std::string& command_id) {
  line.id = command_id;
  return protocol::encode(line);
}

// Campaigns with rows that can still change: they live in memory.
bool is_loaded_state(State s) {
  return s == State::scheduled || s == State::running || s == State::paused_by_user ||
         s == State::paused_by_workflow || s == State::aborted;
}
// Replies also wake the scheduler, but not more often than this (a tick commits: one fsync).
constexpr TimeMs k_reply_tick_spacing_ms = 50;
// Replies and broker acknowledgements are written at most this often (each write is an fsync; writing
// per loop iteration made the disk the bottleneck). A crash loses at most this much: an unwritten
// acknowledgement means one more publish with the same command id, an unwritten reply leaves the
// execution sent until its reply timeout.
constexpr TimeMs k_write_spacing_ms = 50;
// Events of a running campaign at most this often (PROTOCOL §3).
constexpr TimeMs k_event_period_ms = 1000;
// Entry conditions read device properties; they are refreshed at most this often.
constexpr TimeMs k_properties_refresh_ms = 5000;
// Replies other instances put into a campaign's inbox are read at most this often, this many at a time.
constexpr TimeMs k_inbox_poll_ms = 100;
constexpr int k_inbox_batch = 5000;
// Campaigns read per state and page when looking for campaigns nobody drives.
constexpr int k_lease_scan_page = 1000;
// Open executions read per device message for campaigns driven elsewhere (one per campaign in flight).
constexpr int k_open_per_device = 100;
// Bounds of what an instance remembers of campaigns it does not drive: their documents and the presence
// redelivery counts of their attempts. Past a bound the memory is cleared: documents are read again, and
// an attempt may be re-published once more than commands.redeliver_max_attempts says.
constexpr std::size_t k_foreign_campaigns_memory = 10'000;
constexpr std::size_t k_foreign_sends_memory = 100'000;
constexpr int k_list_default = 100;
constexpr int k_list_max = 1000;

class UlidIds final : public campaigns::IdGenerator {
 public:
  explicit UlidIds(core::Clock& clock) : clock_(clock) {}
  std::string next_command_id() override { return core::new_id(clock_.now_ms()); }

 private:
  core::Clock& clock_;
};

// The device store behind the engine's MemberLookup, read once before expand() runs.
class StoreLookup final : public campaigns::MemberLookup {
 public:
  Status load(storage::DeviceStore& devices, const campaigns::CampaignDocument& doc) {
    std::vector<std::string> ids;
    std::set<std::string> tags;
    for (const auto& g : doc.groups) {
      ids.insert(ids.end(), g.hardware_ids.begin(), g.hardware_ids.end());
      tags.insert(g.tags.begin(), g.tags.end());
    }
    auto existing = devices.existing(ids);
    if (!existing) return existing.error();
    existing_.insert(existing->begin(), existing->end());
    for (const auto& t : tags) {
      auto with = devices.hardware_ids_with_tags({t});
      if (!with) return with.error();
      by_tag_[t] = std::move(*with);
    }
    return {};
  }
  bool device_exists(const std::string& hw) const override { return existing_.count(hw) > 0; }
  std::vector<std::string> devices_with_tag(const std::string& tag) const override {
    auto it = by_tag_.find(tag);
    return it == by_tag_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  std::unordered_set<std::string> existing_;
  std::map<std::string, std::vector<std::string>> by_tag_;
};

// What the storage row holds beyond the engine's Execution.
struct Side {
  std::int64_t rowid = 0;  // the execution row's (storage::ExecutionRow::rowid)
  std::string output;
  std::optional<TimeMs> replied_at;
  // Presence redelivery of the current attempt (memory only): which attempt, how often it was published
  // again, and its last hand-over (a re-publication or a pending pull) after its first send.
  std::string resent_id;
  int resent = 0;
  std::optional<TimeMs> last_sent_at;
};

Execution from_row(const storage::ExecutionRow& r) {
  Execution e;
  e.hardware_id = r.hardware_id;
  e.group = r.group_index;
  e.state = campaigns::exec_state_from_string(r.state).value_or(ExecState::queued);
  e.attempt = r.attempt;
  e.command_id = r.command_id;
  e.first_sent_at = r.first_sent_at;
  e.sent_at = r.sent_at;
  e.next_attempt_at = r.next_attempt_at;
  e.finished_at = r.finished_at;
  e.reply_ok = r.reply_ok;
  e.version_reported = r.version_verified;
  e.version_at_send = r.version_at_send;
  return e;
}

storage::ExecutionRow to_row(const std::string& campaign_id, const Execution& e, const Side& side,
                             TimeMs now) {
  storage::ExecutionRow r;
  r.campaign_id = campaign_id;
  r.hardware_id = e.hardware_id;
  r.group_index = e.group;
  r.state = std::string(campaigns::to_string(e.state));
  r.attempt = e.attempt;
  r.command_id = e.command_id;
  r.sent_at = e.sent_at;
  r.replied_at = side.replied_at;
  r.next_attempt_at = e.next_attempt_at;
  r.output = side.output;
  r.version_verified = e.version_reported;
  r.updated_at = now;
  r.first_sent_at = e.first_sent_at;
  r.finished_at = e.finished_at;
  r.reply_ok = e.reply_ok;
  r.version_at_send = e.version_at_send;
  r.rowid = side.rowid;
  return r;
}

bool needs_version(const campaigns::CampaignDocument& d) {
  return d.type == campaigns::CampaignType::provisioning && d.success.verify_version;
}

protocol::CommandType command_type(campaigns::CampaignType t) {
  switch (t) {
    case campaigns::CampaignType::provisioning:
      return protocol::CommandType::firmware;
    case campaigns::CampaignType::exec:
      return protocol::CommandType::exec;
    case campaigns::CampaignType::reboot:
      return protocol::CommandType::reboot;
    case campaigns::CampaignType::shutdown:
      return protocol::CommandType::shutdown;
    case campaigns::CampaignType::ping:
      return protocol::CommandType::ping;
    case campaigns::CampaignType::health:
      return protocol::CommandType::health;
  }
  return protocol::CommandType::exec;
}

// The command line of every send of a campaign, without its id.
protocol::CommandLine line_template(const campaigns::CampaignDocument& d) {
  protocol::CommandLine line;
  line.type = command_type(d.type);
  line.execution =
      d.execution == campaigns::ExecutionMode::async ? protocol::Execution::async : protocol::Execution::sync;
  if (d.type == campaigns::CampaignType::provisioning) {
    line.command = d.package_id.value_or("");
  } else if (d.type == campaigns::CampaignType::exec) {
    line.command = d.command.value_or("");
    line.arguments = d.arguments;
  }
  return line;
}

// The engine fields that have no column of their own, kept in campaigns.engine_state.
std::string engine_state_text(const CampaignSnapshot& s) {
  nlohmann::json j{{"pause_cause", campaigns::to_string(s.progress.pause_cause)},
                   {"approved_gate", s.progress.approved_gate},
                   {"abort_base_finished", s.progress.abort_base_finished},
                   {"abort_base_failed", s.progress.abort_base_failed},
                   {"missing_per_group", s.missing_per_group}};
  if (s.target_version) j["target_version"] = *s.target_version;
  return j.dump();
}

Status read_engine_state(const std::string& text, CampaignSnapshot& s) {
  if (text.empty()) return {};
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return make_error(ErrorCode::internal, "campaign " + s.id + " has an unreadable engine state");
  }
  try {
    s.progress.pause_cause = campaigns::pause_cause_from_string(j.value("pause_cause", "none"))
                                 .value_or(campaigns::PauseCause::none);
    s.progress.approved_gate = j.value("approved_gate", 0);
    s.progress.abort_base_finished = j.value("abort_base_finished", std::int64_t{0});
    s.progress.abort_base_failed = j.value("abort_base_failed", std::int64_t{0});
    s.missing_per_group = j.value("missing_per_group", std::vector<int>{});
    if (j.contains("target_version") && j["target_version"].is_string()) {
      s.target_version = j["target_version"].get<std::string>();
    }
  } catch (const std::exception&) {
    return make_error(ErrorCode::internal, "campaign " + s.id + " has an unreadable engine state");
  }
  return {};
}

// The campaign row's mutable fields from the snapshot.
storage::CampaignRow campaign_row(const storage::CampaignRow& base, const CampaignSnapshot& s, TimeMs now) {
  storage::CampaignRow row = base;
  const auto& p = s.progress;
  row.state = std::string(campaigns::to_string(p.state));
  row.reason = p.reason;
  row.started_at = p.started_at;
  row.ended_at = p.ended_at;
  row.current_group = p.current_group;
  row.group_done_at = p.group_finished_at;
  row.engine_state = engine_state_text(s);
  row.updated_at = now;
  return row;
}

}  // namespace

struct CampaignService::Impl final : OutboxOwner {
  std::uint64_t sends_ = 0;  // sends handed to the outbox (metrics)
  // One campaign in memory.
  struct Active {
    storage::CampaignRow base;  // immutable fields (id, name, type, document, created_at)
    CampaignSnapshot snap;
    std::vector<Side> side;                                      // parallel to snap.executions
    std::unordered_map<std::string, std::size_t> by_command_id;  // every attempt minted while loaded
    std::set<std::size_t> dirty;                                 // applied in memory, not yet written
    protocol::CommandLine line;
    bool changed_since_event = true;
    TimeMs last_event_at = 0;
    TimeMs properties_loaded_at = 0;
    // The fencing token of our "campaign:<id>" lease (0: not held, a campaign read for get/list).
    std::int64_t token = 0;
    // When the lease lapses unless renewed (our clock at its last acquire or renew + its TTL). Past it
    // another instance may drive the campaign, and an instance that lost its lease publishes nothing of it
    // (issue 13), so the outbox drops our queued lines of it (still_wanted). That an old attempt's line
    // never reaches a device after its retry's is the outbox item's expiry (OutMessage::not_after_ms).
    TimeMs lease_until = 0;
    // Inbox replies applied in memory, deleted from the inbox by the next fenced write.
    std::vector<std::string> inbox_applied;
    // Version reports from the version inbox applied in memory, deleted by the next fenced write.
    std::vector<storage::VersionReport> versions_applied;
  };

  // What a device's message needs of a campaign this instance does not drive (PROTOCOL §7: any instance
  // answers a device), read once from its document (which never changes).
  struct Foreign {
    protocol::CommandLine line;  // without the id
    TimeMs reply_timeout_ms = 0;
    bool needs_version = false;
  };
  // Presence redelivery of an attempt of a campaign driven elsewhere (memory only, like Side).
  struct ForeignSend {
    int resent = 0;
    std::optional<TimeMs> last_sent_at;
  };
  // The outbox owner of the re-publications of attempts of campaigns driven elsewhere: they were
  // committed by the driver, so they are published as they are (same command id) and nothing of them is
  // written here (a non-driving instance commits no campaign state).
  struct ForeignOwner final : OutboxOwner {
    bool still_wanted(const OutboxItem&) override { return true; }
    void acknowledged(std::vector<OutboxItem>) override {}
  };

  Impl(const Config& config, core::Clock& clock, storage::Database& db, Publisher& publisher,
       const protocol::Topics& topics, Outbox& outbox, BatchEffects& effects)
      : config_(config),
        clock_(clock),
        db_(db),
        publisher_(publisher),
        topics_(topics),
        outbox_(outbox),
        effects_(effects),
        store_(db),
        devices_(db),
        packages_(db),
        idempotency_(db),
        ids_(clock),
        leases_(db),
        instance_id_(instance_id(config)),
        shared_store_(db.backend() == storage::Backend::postgres) {}

  const Config& config_;
  core::Clock& clock_;
  storage::Database& db_;
  Publisher& publisher_;
  const protocol::Topics& topics_;
  Outbox& outbox_;
  BatchEffects& effects_;
  storage::CampaignStore store_;
  storage::DeviceStore devices_;
  storage::PackageStore packages_;
  IdempotentRequests idempotency_;
  UlidIds ids_;
  storage::LeaseStore leases_;
  const std::string instance_id_;
  // Other instances may drive campaigns (PostgreSQL). A SQLite database has one process (flock), which
  // drives every campaign: it never reads the database for campaigns driven elsewhere.
  const bool shared_store_;
  std::unordered_map<std::string, Foreign> foreign_;
  std::unordered_map<std::string, ForeignSend> foreign_sends_;  // by command id
  ForeignOwner foreign_owner_;

  // The campaigns this instance drives (holds the lease of), by id.
  std::map<std::string, std::unique_ptr<Active>> active_;
  // Campaigns whose fence failed in a write: dropped by drop_lost() once nothing refers to them.
  std::set<std::string> lost_;
  TimeMs last_lease_scan_ = 0;
  TimeMs last_inbox_poll_ = 0;
  bool replies_since_tick_ = false;
  // A tick is due at the next flush, without waiting for the timer or the reply spacing: a campaign was
  // started or resumed (its first sends), or a reply left one with nothing in flight (its next sends, its
  // next group or its end).
  bool tick_soon_ = false;
  TimeMs last_tick_at_ = 0;
  TimeMs last_write_at_ = 0;

  // ---- loading ----

  Status load_properties(Active& a) {
    a.properties_loaded_at = clock_.now_ms();
    if (needs_version(a.snap.doc)) {
      // verify_version with "latest" compares a report with the version the device had at send.
      for (auto& e : a.snap.executions) {
        auto dev = devices_.get(e.hardware_id);
        if (!dev) {
          if (dev.error().code == ErrorCode::not_found) continue;
          return dev.error();
        }
        e.reported_version = dev->reported_version;
      }
    }
    if (a.snap.doc.conditions.empty()) return {};
    std::set<int> groups;
    for (const auto& c : a.snap.doc.conditions) groups.insert(c.group);
    for (const auto& e : a.snap.executions) {
      if (!groups.count(e.group)) continue;
      auto dev = devices_.get(e.hardware_id);
      if (!dev) {
        if (dev.error().code == ErrorCode::not_found) continue;
        return dev.error();
      }
      a.snap.device_properties[e.hardware_id] = dev->properties;
    }
    return {};
  }

  // The snapshot of a stored campaign; with_executions false leaves executions empty (created ones).
  // known: the campaign's execution rows as just committed, in the store's order (group_index, then
  // hardware_id byte-wise), so that a campaign that just started is not read back row by row. nullptr:
  // read them from the store.
  Result<std::unique_ptr<Active>> load(const storage::CampaignRow& row,
                                       const std::vector<storage::ExecutionRow>* known = nullptr) {
    auto a = std::make_unique<Active>();
    a->base = row;
    CampaignSnapshot& s = a->snap;
    s.id = row.id;
    s.created_at = row.created_at;
    auto j = nlohmann::json::parse(row.document_json, nullptr, false);
    auto doc = campaigns::parse_campaign_document(j);
    if (!doc) return make_error(ErrorCode::internal, "campaign " + row.id + " has an unreadable document");
    s.doc = std::move(*doc);
    auto state = campaigns::state_from_string(row.state);
    if (!state) return make_error(ErrorCode::internal, "campaign " + row.id + " has an unknown state");
    s.progress.state = *state;
    s.progress.reason = row.reason;
    s.progress.current_group = row.current_group;
    s.progress.started_at = row.started_at;
    s.progress.ended_at = row.ended_at;
    s.progress.group_finished_at = row.group_done_at;
    if (auto st = read_engine_state(row.engine_state, s); !st) return st.error();
    if (s.missing_per_group.size() != s.doc.groups.size()) s.missing_per_group.resize(s.doc.groups.size(), 0);
    if (*state != State::created) {
      std::vector<storage::ExecutionRow> read;
      if (!known) {
        auto stored = store_.executions(row.id);
        if (!stored) return stored.error();
        read = std::move(*stored);
        known = &read;
      }
      s.executions.reserve(known->size());
      a->side.reserve(known->size());
      for (const auto& r : *known) {
        s.executions.push_back(from_row(r));
        Side side;
        side.rowid = r.rowid;
        side.output = r.output;
        side.replied_at = r.replied_at;
        a->side.push_back(std::move(side));
        if (r.command_id) a->by_command_id.emplace(*r.command_id, s.executions.size() - 1);
      }
    }
    s.build_index();
    a->line = line_template(s.doc);
    if (auto st = load_properties(*a); !st) return st.error();
    return a;
  }

  // PROTOCOL §4: a late reply to a superseded attempt is recorded in the attempt history and changes
  // nothing else. True when this device's attempt with that id took the reply.
  bool record_late_reply(const std::string& hw, const std::string& command_id, bool success,
                         const std::string& output, TimeMs now) {
    auto r = store_.record_attempt_reply(hw, command_id, success, output, now);
    if (!r) {
      log_limited(spdlog::level::warn, "campaign.attempt_reply_not_recorded",
                  {{"hardware_id", hw}, {"command_id", command_id}},
                  "campaign attempt history: a reply was not recorded: {}", r.error().message);
      return false;
    }
    return *r;
  }

  // The loaded campaign while we still hold its lease, else nullptr: another instance that took the lease
  // over (for an operator's action, or after ours lapsed) has committed since, so our snapshot is stale
  // until our next lease scan drops it, and a read must come from the database. A read of the lease row,
  // not the fence: it takes no lock.
  Result<Active*> driven(const std::string& id) {
    Active* a = loaded(id);
    if (a == nullptr) return nullptr;
    auto lease = leases_.get(lease_name(id));
    if (!lease) {
      if (lease.error().code == ErrorCode::not_found) return nullptr;
      return lease.error();
    }
    if (lease->holder != instance_id_ || lease->token != a->token) return nullptr;
    return a;
  }

  // The loaded campaign, or nullptr.
  Active* loaded(const std::string& id) {
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second.get();
  }

  // ---- leases (PROTOCOL §7) ----

  static std::string lease_name(const std::string& id) { return "campaign:" + id; }

  // The fence: run inside every transaction that writes a campaign's state or commits its attempts.
  // On failure the campaign is marked lost (another instance took it over) and the transaction must roll
  // back.
  Status fence(const Active& a) {
    auto st = leases_.check(lease_name(a.snap.id), instance_id_, a.token);
    if (!st && st.error().code == ErrorCode::conflict) lost_.insert(a.snap.id);
    return st;
  }

  // Forgets the campaigns whose lease was lost: their unwritten work is dropped, not half-applied
  // (what was committed stays; the new holder reads it and goes on from there). Their sends waiting in
  // the outbox are dropped by still_wanted().
  void drop_lost() {
    for (const auto& id : lost_) {
      if (active_.erase(id) > 0)
        log_warn({{"campaign_id", id}},
                 "campaign: lease lost, another instance drives it now; dropped its in-memory work");
    }
    lost_.clear();
  }

  // Queues again every send of a campaign we just began to drive that still waits for its reply, with its
  // command id: one never acknowledged by the broker, and one whose reply went to an instance that died
  // before writing it. The device answers the id again. Returns how many.
  std::size_t requeue_sent(Active& act) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < act.snap.executions.size(); ++i) {
      const Execution& e = act.snap.executions[i];
      if (e.state != ExecState::sent || !e.command_id) continue;
      enqueue_send(act, e.hardware_id, *e.command_id, e.attempt);
      // This is the takeover's re-publication: presence redelivery must not add a second one.
      act.side[i].resent_id = *e.command_id;
      act.side[i].last_sent_at = clock_.now_ms();
      ++n;
    }
    return n;
  }

  // Takes the lease of campaign id (seize: even from a live holder, for an operator's action) and reads
  // the campaign afresh: what the previous holder committed is in it. nullptr (no error) when another
  // instance holds the lease and seize is false.
  Result<Active*> adopt(const std::string& id, bool seize, std::size_t* resent = nullptr) {
    const TimeMs now = clock_.now_ms();
    const std::string name = lease_name(id);
    auto lease = leases_.acquire(name, instance_id_, now, config_.cluster_lease_ttl_ms);
    if (!lease && lease.error().code == ErrorCode::conflict) {
      if (!seize) return nullptr;
      lease = leases_.take_over(name, instance_id_, now, config_.cluster_lease_ttl_ms);
      if (lease)
        log_warn({{"campaign_id", id}}, "campaign: taken over from a live instance for an operator's action");
    }
    if (!lease) return lease.error();
    auto row = store_.get(id);
    if (!row) return row.error();
    auto a = load(*row);
    if (!a) return a.error();
    (*a)->token = lease->token;
    (*a)->lease_until = now + config_.cluster_lease_ttl_ms;
    Active& act = *(active_[id] = std::move(*a));
    const std::size_t n = requeue_sent(act);
    if (resent) *resent += n;
    log_info({{"campaign_id", id}},
             "campaign: driven by instance {} (lease token {}), {} sends published again", instance_id_,
             lease->token, n);
    return &act;
  }

  // Renews the leases we hold and takes the free or lapsed ones of campaigns that can still change.
  void scan_leases(std::size_t* resent = nullptr) {
    const TimeMs now = clock_.now_ms();
    last_lease_scan_ = now;
    for (auto& [id, a] : active_) {
      auto r = leases_.renew(lease_name(id), instance_id_, a->token, now, config_.cluster_lease_ttl_ms);
      if (r)
        a->lease_until = now + config_.cluster_lease_ttl_ms;
      else if (r.error().code == ErrorCode::conflict)
        lost_.insert(id);
      else if (!r)
        log_limited(spdlog::level::err, "campaign.lease_renew", {{"campaign_id", id}},
                    "campaign: cannot renew its lease: {}", r.error().message);
    }
    drop_lost();
    for (State state : {State::scheduled, State::running, State::paused_by_user, State::paused_by_workflow,
                        State::aborted}) {
      storage::CampaignQuery q;
      q.limit = k_lease_scan_page;
      q.state = std::string(campaigns::to_string(state));
      for (;;) {
        auto rows = store_.list(q);
        if (!rows) {
          log_limited(spdlog::level::err, "campaign.lease_scan", {}, "campaign: cannot list campaigns: {}",
                      rows.error().message);
          return;
        }
        for (const auto& row : *rows) {
          if (loaded(row.id)) continue;
          auto a = adopt(row.id, false, resent);
          if (!a) {
            log_limited(spdlog::level::err, "campaign.adopt", {{"campaign_id", row.id}},
                        "campaign: cannot take it over: {}", a.error().message);
          } else if (*a) {
            maybe_unload(row.id);
          }
        }
        if (static_cast<int>(rows->size()) < q.limit) break;
        q.after = rows->back().id;
      }
    }
  }

  // Applies the replies other instances put into our campaigns' inboxes (PROTOCOL §7: a reply may reach
  // any instance). Each is deleted by the next fenced write of its campaign, with the rows it changed.
  void poll_inbox() {
    const TimeMs now = clock_.now_ms();
    last_inbox_poll_ = now;
    for (auto& [id, a] : active_) {
      auto rows = store_.inbox(id, k_inbox_batch);
      if (!rows) {
        log_limited(spdlog::level::err, "campaign.inbox", {{"campaign_id", id}},
                    "campaign: cannot read its inbox: {}", rows.error().message);
        continue;
      }
      std::set<std::string> pending(a->inbox_applied.begin(), a->inbox_applied.end());
      for (const auto& r : *rows) {
        if (pending.count(r.command_id)) continue;  // applied, deletion not written yet
        a->inbox_applied.push_back(r.command_id);
        auto it = a->by_command_id.find(r.command_id);
        if (it == a->by_command_id.end() || a->snap.executions[it->second].hardware_id != r.hardware_id)
          continue;
        const std::size_t i = it->second;
        auto rr =
            campaigns::on_reply(a->snap, r.hardware_id, r.command_id, r.success, std::min(now, r.replied_at));
        if (rr.disposition != campaigns::Disposition::applied) continue;
        campaigns::apply(a->snap, rr.result);
        a->side[i].output = r.output;
        a->side[i].replied_at = r.replied_at;
        a->dirty.insert(i);
        a->changed_since_event = true;
        replies_since_tick_ = true;
      }
      if (shared_store_ && needs_version(a->snap.doc)) poll_versions(*a, now);
    }
  }

  // Applies the version reports other instances put into the campaign's version inbox (verify_version);
  // each is deleted by the next fenced write, unless a newer report of the device replaced it.
  void poll_versions(Active& a, TimeMs now) {
    auto rows = store_.version_reports(a.snap.id, k_inbox_batch);
    if (!rows) {
      log_limited(spdlog::level::err, "campaign.version_inbox", {{"campaign_id", a.snap.id}},
                  "campaign: cannot read its version inbox: {}", rows.error().message);
      return;
    }
    for (auto& v : *rows) {
      if (std::find(a.versions_applied.begin(), a.versions_applied.end(), v) != a.versions_applied.end())
        continue;  // applied, deletion not written yet
      auto rr =
          campaigns::on_version_reported(a.snap, v.hardware_id, v.version, std::min(now, v.reported_at));
      a.versions_applied.push_back(std::move(v));
      if (rr.disposition != campaigns::Disposition::applied) continue;
      for (const auto& e : rr.result.changes) {
        auto it = a.snap.index_by_hardware_id.find(e.hardware_id);
        if (it != a.snap.index_by_hardware_id.end()) a.dirty.insert(it->second);
      }
      campaigns::apply(a.snap, rr.result);
      a.changed_since_event = true;
      replies_since_tick_ = true;
    }
  }

  // ---- campaigns driven elsewhere ----

  // The document digest of campaign id, read on first use; nullopt when it cannot be read.
  std::optional<Foreign> foreign(const std::string& id) {
    if (auto it = foreign_.find(id); it != foreign_.end()) return it->second;
    auto row = store_.get(id);
    if (!row) return std::nullopt;
    auto doc = campaigns::parse_campaign_document(nlohmann::json::parse(row->document_json, nullptr, false));
    if (!doc) return std::nullopt;
    Foreign f{line_template(*doc), doc->reply_timeout_s * 1000, needs_version(*doc)};
    if (foreign_.size() >= k_foreign_campaigns_memory) foreign_.clear();
    foreign_.emplace(id, f);
    return f;
  }

  // hw's open (queued or sent) executions of the campaigns this instance does not drive, as committed
  // by their drivers (one indexed query; none on SQLite). Those we drive are in memory, which is ahead.
  std::vector<std::pair<Foreign, storage::OpenExecution>> elsewhere(const std::string& hw) {
    std::vector<std::pair<Foreign, storage::OpenExecution>> out;
    if (!shared_store_) return out;
    auto rows = store_.open_executions(hw, k_open_per_device);
    if (!rows) {
      log_limited(spdlog::level::err, "campaign.open_executions", {{"hardware_id", hw}},
                  "campaign: cannot read the device's open executions: {}", rows.error().message);
      return out;
    }
    for (auto& r : *rows) {
      if (loaded(r.campaign_id)) continue;
      auto f = foreign(r.campaign_id);
      if (f) out.emplace_back(std::move(*f), std::move(r));
    }
    return out;
  }

  // The attempts of campaigns driven elsewhere that hw has not answered and whose reply timeout has not
  // passed: (digest, execution) with a command id and a send time.
  std::vector<std::pair<Foreign, storage::OpenExecution>> sent_elsewhere(const std::string& hw, TimeMs now) {
    auto all = elsewhere(hw);
    std::erase_if(all, [&](const auto& fe) {
      const auto& e = fe.second;
      return e.state != "sent" || !e.command_id || !e.sent_at ||
             *e.sent_at + fe.first.reply_timeout_ms <= now;
    });
    return all;
  }

  // Publishes again an attempt another instance committed, with its command id.
  void enqueue_foreign(const Foreign& f, const std::string& hw, const storage::OpenExecution& e) {
    auto text = line_for(f.line, *e.command_id);
    if (!text) return;
    OutboxItem item;
    item.owner = &foreign_owner_;
    item.command_id = *e.command_id;
    item.hardware_id = hw;
    item.payload = std::move(*text);
    item.expires_at = *e.sent_at + f.reply_timeout_ms;
    item.group = e.campaign_id;
    item.attempt = e.attempt;
    outbox_.enqueue(std::move(item));
    ++sends_;
  }

  ForeignSend& foreign_send(const std::string& command_id) {
    if (foreign_sends_.size() >= k_foreign_sends_memory && !foreign_sends_.count(command_id))
      foreign_sends_.clear();
    return foreign_sends_[command_id];
  }

  // ---- the outbox ----

  // Queues the committed send of command_id to hw; it expires with its reply timeout.
  void enqueue_send(const Active& a, const std::string& hw, const std::string& command_id, int attempt) {
    auto it = a.snap.index_by_hardware_id.find(hw);
    if (it == a.snap.index_by_hardware_id.end()) return;
    const Execution& e = a.snap.executions[it->second];
    auto text = line_for(a.line, command_id);
    if (!text || !e.sent_at) {
      log_limited(spdlog::level::err, "campaign.command_unbuildable",
                  {{"campaign_id", a.snap.id}, {"hardware_id", hw}},
                  "campaign: cannot build the command for the device");
      return;
    }
    OutboxItem item;
    item.owner = this;
    item.command_id = command_id;
    item.hardware_id = hw;
    item.payload = std::move(*text);
    item.expires_at = *e.sent_at + a.snap.doc.reply_timeout_s * 1000;
    item.group = a.snap.id;
    item.attempt = attempt;
    outbox_.enqueue(std::move(item));
    ++sends_;
  }

  // Whether our lease of campaign id is certainly live now: within its TTL since our last acquire or
  // renew, or renewed now (one statement, only once it is due). When it is not (taken over, or the database
  // unreachable), our queued lines of the campaign are dropped: requeue_sent of whoever drives it next
  // publishes them again with the same ids, or its timeout retries them.
  bool lease_current(const std::string& id, Active& a) {
    const TimeMs now = clock_.now_ms();
    if (now < a.lease_until) return true;
    auto r = leases_.renew(lease_name(id), instance_id_, a.token, now, config_.cluster_lease_ttl_ms);
    if (r) {
      a.lease_until = now + config_.cluster_lease_ttl_ms;
      return true;
    }
    if (r.error().code == ErrorCode::conflict) lost_.insert(id);  // dropped by the next scan_leases
    log_limited(spdlog::level::warn, "campaign.lease_lapsed", {{"campaign_id", id}},
                "campaign: its lease may have lapsed ({}); queued lines of it are not published",
                r.error().message);
    return false;
  }

  bool still_wanted(const OutboxItem& item) override {
    Active* a = loaded(item.group);
    if (a == nullptr) return false;
    if (!lease_current(item.group, *a)) return false;
    auto it = a->snap.index_by_hardware_id.find(item.hardware_id);
    if (it == a->snap.index_by_hardware_id.end()) return false;
    const Execution& e = a->snap.executions[it->second];
    // Canceled, answered or superseded while waiting: nothing to deliver.
    return e.state == ExecState::sent && e.command_id == item.command_id && e.sent_at.has_value();
  }

  // Nothing to record: a restart publishes every unanswered send again whether or not the broker had
  // acknowledged it (PROTOCOL §1.3's restart exception), so an acknowledgement decides nothing. (Until
  // session 9 it was written to campaign_executions.published_attempt, a column nothing has read since
  // the restart rule changed: one UPDATE per send, 5% of a campaign's loop.)
  void acknowledged(std::vector<OutboxItem>) override {}

  // ---- committing ----

  // Commits r (plus the campaign's rows changed by replies since its last write) in one transaction,
  // then applies it to memory and queues its sends.
  // The after-commit failpoint name of a transaction of ours that just ended: fired now after a real
  // commit (a tick), after the batch's commit when ours was a savepoint in it (an API request).
  void committed(std::string_view name) { effects_.committed(name, db_.in_transaction()); }

  Status commit(Active& a, const TickResult& r) {
    const TimeMs now = clock_.now_ms();
    const bool transition = r.progress && r.progress->state != a.snap.progress.state;
    std::vector<storage::ExecutionRow> rows;
    std::set<std::size_t> written;
    for (const auto& e : r.changes) {
      auto it = a.snap.index_by_hardware_id.find(e.hardware_id);
      if (it == a.snap.index_by_hardware_id.end()) continue;
      written.insert(it->second);
      rows.push_back(to_row(a.snap.id, e, a.side[it->second], now));
    }
    for (std::size_t i : a.dirty) {
      if (!written.count(i)) rows.push_back(to_row(a.snap.id, a.snap.executions[i], a.side[i], now));
    }
    std::vector<storage::AttemptRecord> attempts;
    attempts.reserve(r.sends.size());
    for (const auto& s : r.sends) attempts.push_back({a.snap.id, s.hardware_id, s.attempt, s.command_id});
    std::optional<storage::CampaignRow> row;
    if (r.progress) {
      CampaignSnapshot next_progress_only;
      next_progress_only.progress = *r.progress;
      next_progress_only.missing_per_group = a.snap.missing_per_group;
      next_progress_only.target_version = a.snap.target_version;
      row = campaign_row(a.base, next_progress_only, now);
    }
    if (transition) DISPATCH_FAILPOINT("before_campaign_transition_commit");
    auto st = db_.transaction([&]() -> Status {
      if (auto f = fence(a); !f) return f;
      if (auto s = store_.clear_inbox(a.snap.id, a.inbox_applied); !s) return s;
      if (auto s = store_.clear_version_reports(a.versions_applied); !s) return s;
      if (row) {
        if (auto s = store_.update(*row); !s) return s;
      }
      if (!rows.empty()) {
        if (auto s = store_.update_executions(rows); !s) return s;
      }
      if (!attempts.empty()) return store_.record_attempts(attempts);
      return {};
    });
    if (!st) return st;
    if (transition) committed("after_campaign_transition_commit");
    if (!r.sends.empty()) committed("after_execution_commit");
    a.dirty.clear();
    a.inbox_applied.clear();
    a.versions_applied.clear();
    campaigns::apply(a.snap, r);
    for (const auto& s : r.sends) {
      auto it = a.snap.index_by_hardware_id.find(s.hardware_id);
      if (it != a.snap.index_by_hardware_id.end()) a.by_command_id[s.command_id] = it->second;
      enqueue_send(a, s.hardware_id, s.command_id, s.attempt);
    }
    if (!r.empty()) a.changed_since_event = true;
    return {};
  }

  // Writes every campaign's reply changes in one transaction.
  void write_batched() {
    const TimeMs now = clock_.now_ms();
    bool any_dirty = false;
    for (auto& [id, a] : active_)
      any_dirty = any_dirty || !a->dirty.empty() || !a->inbox_applied.empty() || !a->versions_applied.empty();
    if (!any_dirty) return;
    last_write_at_ = now;
    std::set<std::string> fenced_out;
    auto st = db_.transaction([&]() -> Status {
      for (auto& [id, a] : active_) {
        if (a->dirty.empty() && a->inbox_applied.empty() && a->versions_applied.empty()) continue;
        // A campaign whose lease was lost writes nothing; the others' writes go on.
        if (auto f = fence(*a); !f) {
          if (f.error().code != ErrorCode::conflict) return f;
          fenced_out.insert(id);
          continue;
        }
        if (auto s = store_.clear_inbox(id, a->inbox_applied); !s) return s;
        if (auto s = store_.clear_version_reports(a->versions_applied); !s) return s;
        std::vector<storage::ExecutionRow> rows;
        rows.reserve(a->dirty.size());
        for (std::size_t i : a->dirty) rows.push_back(to_row(id, a->snap.executions[i], a->side[i], now));
        if (auto s = store_.update_executions(rows); !s) return s;
      }
      return {};
    });
    if (!st) {
      // Kept in memory and written by the next flush or commit.
      spdlog::error("campaigns: cannot write replies: {}", st.error().message);
      return;
    }
    for (auto& [id, a] : active_) {
      if (fenced_out.count(id)) continue;
      a->dirty.clear();
      a->inbox_applied.clear();
      a->versions_applied.clear();
    }
    drop_lost();
  }

  // ---- events ----

  nlohmann::json document(const CampaignSnapshot& s) const {
    return campaigns::to_json(s, campaigns::compute(s, clock_.now_ms()));
  }

  void publish_event(Active& a) {
    OutMessage m;
    m.topic = topics_.campaign_event(a.snap.id);
    m.payload = protocol::dump_json(document(a.snap));
    m.qos = 1;
    m.retain = true;
    publisher_.publish(std::move(m));
    a.changed_since_event = false;
    a.last_event_at = clock_.now_ms();
  }

  // A terminal campaign with nothing in flight can change no more: it leaves memory.
  void maybe_unload(const std::string& id) {
    Active* a = loaded(id);
    if (a == nullptr || !campaigns::is_terminal(a->snap.progress.state) || !a->dirty.empty() ||
        !a->inbox_applied.empty() || !a->versions_applied.empty())
      return;
    if (a->snap.index_current()) {
      if (a->snap.index.count(ExecState::sent) > 0) return;
    } else if (std::any_of(a->snap.executions.begin(), a->snap.executions.end(),
                           [](const Execution& e) { return e.state == ExecState::sent; })) {
      return;
    }
    active_.erase(id);
  }

  // ---- scheduler ----

  void tick_all() {
    const TimeMs now = clock_.now_ms();
    if (now - last_lease_scan_ >= config_.cluster_lease_ttl_ms / 3) scan_leases();
    if (now - last_inbox_poll_ >= k_inbox_poll_ms) poll_inbox();
    last_tick_at_ = now;
    replies_since_tick_ = false;
    tick_soon_ = false;
    std::vector<std::string> ids;
    for (const auto& [id, a] : active_) ids.push_back(id);
    for (const auto& id : ids) {
      Active& a = *active_.at(id);
      if (!a.snap.doc.conditions.empty() && now - a.properties_loaded_at >= k_properties_refresh_ms) {
        if (auto st = load_properties(a); !st)
          log_limited(spdlog::level::warn, "campaign.properties", {{"campaign_id", id}},
                      "campaign properties: {}", st.error().message);
      }
      const State before = a.snap.progress.state;
      TickResult r = campaigns::tick(a.snap, now, ids_);
      if (!r.empty() || !a.dirty.empty()) {
        if (auto st = commit(a, r); !st) {
          // Nothing of r was applied: the next tick computes it again (new ids, none recorded), or
          // another instance does (lease lost: dropped below).
          if (!lost_.count(id))
            log_limited(spdlog::level::err, "campaign.tick_commit", {{"campaign_id", id}},
                        "campaign: cannot commit a tick: {}", st.error().message);
          continue;
        }
      }
      const State after = a.snap.progress.state;
      if (after != before) {
        log_info({{"campaign_id", id}}, "campaign {} -> {} {}", campaigns::to_string(before),
                 campaigns::to_string(after), a.snap.progress.reason);
        publish_event(a);
      } else if (a.changed_since_event && now - a.last_event_at >= k_event_period_ms) {
        publish_event(a);
      }
      maybe_unload(id);
    }
    drop_lost();
  }

  // ---- API ----

  Result<nlohmann::json> api_create(const nlohmann::json& body) {
    auto doc = campaigns::parse_campaign_document(body);
    if (!doc) return doc.error();
    auto request_id = protocol::optional_object_id(body, "request_id");
    if (!request_id) return request_id.error();
    if (doc->package_id) {
      if (auto st = protocol::check_object_id(*doc->package_id, "package_id"); !st) return st.error();
      auto pkg = packages_.get(*doc->package_id);
      if (!pkg) {
        if (pkg.error().code == ErrorCode::not_found) {
          return make_error(ErrorCode::not_found, "no package '" + *doc->package_id + "'");
        }
        return pkg.error();
      }
    }
    auto replay = idempotency_.replay("campaigns/create", *request_id, body);
    if (!replay) return replay.error();
    if (*replay) return **replay;
    const TimeMs now = clock_.now_ms();
    storage::CampaignRow row;
    row.id = core::new_id(now);
    row.name = doc->name;
    row.type = std::string(campaigns::to_string(doc->type));
    row.document_json = campaigns::to_json(*doc).dump();
    row.state = std::string(campaigns::to_string(State::created));
    row.created_at = now;
    row.updated_at = now;
    nlohmann::json answer{{"id", row.id}};
    auto st = db_.transaction([&]() -> Status {
      if (auto s = store_.insert(row); !s) return s;
      return idempotency_.record("campaigns/create", *request_id, body, answer, now);
    });
    if (!st) return idempotency_.after_failed_create("campaigns/create", *request_id, body, st.error());
    auto a = load(row);
    if (a) publish_event(**a);
    return answer;
  }

  // The loaded campaign, or one read from the database into holder.
  Result<Active*> obtain(const nlohmann::json& body, std::unique_ptr<Active>& holder) {
    auto id = protocol::required_object_id(body, "id");
    if (!id) return id.error();
    auto current = driven(*id);
    if (!current) return current.error();
    if (*current) return *current;
    auto row = store_.get(*id);
    if (!row) return row.error();
    auto a = load(*row);
    if (!a) return a.error();
    holder = std::move(*a);
    return holder.get();
  }

  // The campaign an action changes: one we drive, or one whose lease we take now (from a live holder too:
  // the action must be applied here and now; the old holder's next write is fenced out).
  Result<Active*> obtain_driven(const nlohmann::json& body) {
    auto id = protocol::required_object_id(body, "id");
    if (!id) return id.error();
    if (Active* a = loaded(*id)) {
      // Another instance may have seized the lease for an action since our last write: then our memory
      // is stale and the action must be decided on what that instance committed, so check the fence first.
      auto f = fence(*a);
      if (f) return a;
      if (f.error().code != ErrorCode::conflict) return f.error();
      drop_lost();
    }
    auto row = store_.get(*id);  // not_found before taking a lease for nothing
    if (!row) return row.error();
    auto a = adopt(*id, true);
    if (!a) return a.error();
    if (*a == nullptr) return make_error(ErrorCode::unavailable, "campaign " + *id + " is busy, retry");
    return *a;
  }

  Result<nlohmann::json> api_start(Active& a) {
    const TimeMs now = clock_.now_ms();
    auto r = campaigns::on_action(a.snap, Action::start, now);
    if (!r) return r.error();
    StoreLookup lookup;
    if (auto st = lookup.load(devices_, a.snap.doc); !st) return st.error();
    campaigns::Expansion x = campaigns::expand(a.snap.doc, lookup);
    CampaignSnapshot next;
    next.progress = r->progress.value_or(a.snap.progress);
    next.missing_per_group = x.missing_per_group;
    if (needs_version(a.snap.doc) && a.snap.doc.package_id) {
      auto pkg = packages_.get(*a.snap.doc.package_id);
      if (!pkg) return pkg.error();
      next.target_version = pkg->version;
    }
    std::vector<storage::ExecutionRow> rows;
    rows.reserve(x.executions.size());
    for (const auto& e : x.executions) rows.push_back(to_row(a.snap.id, e, Side{}, now));
    const storage::CampaignRow row = campaign_row(a.base, next, now);
    DISPATCH_FAILPOINT("before_campaign_transition_commit");
    bool all_inserted = false;
    auto st = db_.transaction([&]() -> Status {
      if (auto f = fence(a); !f) return f;
      if (auto s = store_.update(row); !s) return s;
      std::vector<std::int64_t> rowids;
      auto n = store_.insert_executions(rows, &rowids);
      if (!n) return n.error();
      all_inserted = static_cast<std::size_t>(*n) == rows.size();
      for (std::size_t i = 0; i < rows.size(); ++i) rows[i].rowid = rowids[i];
      return {};
    });
    if (!st) return st.error();
    committed("after_campaign_transition_commit");
    log_info({{"campaign_id", a.snap.id}}, "campaign started: {} members, {} missing", rows.size(),
             x.missing_ids.size());
    // The rows just committed are what the store holds (a row that already existed, never expected here,
    // sends us back to reading them): sorted as the store returns them, they become the campaign in
    // memory without reading 100,000s of rows back.
    if (all_inserted) {
      std::sort(rows.begin(), rows.end(), [](const storage::ExecutionRow& l, const storage::ExecutionRow& r) {
        return l.group_index != r.group_index ? l.group_index < r.group_index : l.hardware_id < r.hardware_id;
      });
    }
    auto fresh = load(row, all_inserted ? &rows : nullptr);
    if (!fresh) return fresh.error();
    const std::string id = a.snap.id;
    (*fresh)->token = a.token;
    (*fresh)->lease_until = a.lease_until;
    Active& b = *(active_[id] = std::move(*fresh));
    publish_event(b);
    return document(b.snap);
  }

  Result<nlohmann::json> api_action(Action action, const nlohmann::json& body) {
    auto got = obtain_driven(body);
    if (!got) return got.error();
    Active& a = **got;
    const std::string id = a.snap.id;
    const State before = a.snap.progress.state;
    const std::int64_t token = a.token;
    auto result = api_action_driven(action, a);
    if (result && (action == Action::start || action == Action::resume)) tick_soon_ = true;
    // Which instance applied an operator's action, and under which lease token: across instances this
    // is how the log tells who decided what.
    if (result)
      log_info({{"campaign_id", id}}, "campaign {} -> {} by the operator's {} (lease token {})",
               campaigns::to_string(before),
               action == Action::remove ? "deleted" : result->value("state", ""),
               campaigns::to_string(action), token);
    if (lost_.count(id)) {
      drop_lost();
      return make_error(ErrorCode::conflict, "campaign " + id + " was taken over by another instance, retry");
    }
    // Only campaigns that can still change stay in memory (and under our lease).
    if (Active* b = loaded(id)) {
      if (!is_loaded_state(b->snap.progress.state) && !campaigns::is_terminal(b->snap.progress.state))
        active_.erase(id);
      else
        maybe_unload(id);
    }
    return result;
  }

  Result<nlohmann::json> api_action_driven(Action action, Active& a) {
    if (action == Action::start) return api_start(a);
    const TimeMs now = clock_.now_ms();
    auto r = campaigns::on_action(a.snap, action, now);
    if (!r) return r.error();
    if (action == Action::remove) {
      const std::string id = a.snap.id;
      nlohmann::json doc = document(a.snap);
      auto st = db_.transaction([&]() -> Status {
        if (auto f = fence(a); !f) return f;
        return store_.remove(id);
      });
      if (!st) return st.error();
      active_.erase(id);
      OutMessage clear;  // an empty retained message removes the retained snapshot
      clear.topic = topics_.campaign_event(id);
      clear.qos = 1;
      clear.retain = true;
      publisher_.publish(std::move(clear));
      return doc;
    }
    if (auto st = commit(a, *r); !st) return st.error();
    publish_event(a);
    nlohmann::json doc = document(a.snap);
    maybe_unload(a.snap.id);
    return doc;
  }

  Result<nlohmann::json> api_get(const nlohmann::json& body) {
    std::unique_ptr<Active> holder;
    auto got = obtain(body, holder);
    if (!got) return got.error();
    return document((*got)->snap);
  }

  Result<nlohmann::json> api_list(const nlohmann::json& body) {
    storage::CampaignQuery q;
    auto state = protocol::optional_string(body, "state");
    if (!state) return state.error();
    if (*state) {
      if (!campaigns::state_from_string(**state)) {
        return make_error(ErrorCode::bad_request, "unknown state '" + protocol::printable(**state) + "'");
      }
      q.state = **state;
    }
    auto limit = protocol::optional_int(body, "limit", 1, k_list_max);
    if (!limit) return limit.error();
    q.limit = static_cast<int>(limit->value_or(k_list_default));
    auto after = protocol::optional_object_id(body, "after");
    if (!after) return after.error();
    q.after = *after;
    auto rows = store_.list(q);
    if (!rows) return rows.error();
    nlohmann::json out = nlohmann::json::array();
    for (const auto& row : *rows) {
      auto current = driven(row.id);
      if (!current) return current.error();
      if (*current) {
        out.push_back(document((*current)->snap));
        continue;
      }
      auto a = load(row);
      if (!a) return a.error();
      out.push_back(document((*a)->snap));
    }
    nlohmann::json answer{{"campaigns", out}};
    // A full page may have more behind it: the cursor is the last id, as devices/list and commands/list do.
    if (static_cast<int>(rows->size()) == q.limit && !rows->empty()) answer["next_after"] = rows->back().id;
    return answer;
  }
};

CampaignService::CampaignService(const Config& config, core::Clock& clock, storage::Database& db,
                                 Publisher& publisher, const protocol::Topics& topics, Outbox& outbox,
                                 BatchEffects& effects)
    : impl_(std::make_unique<Impl>(config, clock, db, publisher, topics, outbox, effects)) {}

// A clean stop writes what flush() was still batching.
CampaignService::~CampaignService() {
  if (impl_) impl_->write_batched();
}

Status CampaignService::start() {
  Impl& m = *impl_;
  // Takes the leases of the campaigns nobody drives (on one node: all of them; a restart under the same
  // instance id takes its own live leases back) and publishes their unanswered sends again.
  std::size_t resent = 0;
  m.scan_leases(&resent);
  if (!m.active_.empty()) {
    spdlog::info("campaigns: {} active, {} unanswered sends to publish again", m.active_.size(), resent);
  }
  return {};
}

void CampaignService::register_routes(Router& router) {
  Impl& m = *impl_;
  router.add_api("campaigns", "create", [&m](const nlohmann::json& b) { return m.api_create(b); });
  router.add_api("campaigns", "get", [&m](const nlohmann::json& b) { return m.api_get(b); });
  router.add_api("campaigns", "list", [&m](const nlohmann::json& b) { return m.api_list(b); });
  for (Action action : {Action::start, Action::pause, Action::resume, Action::terminate, Action::remove}) {
    router.add_api("campaigns", std::string(campaigns::to_string(action)),
                   [&m, action](const nlohmann::json& b) { return m.api_action(action, b); });
  }
}

Result<nlohmann::json> CampaignService::api(const std::string& action, const nlohmann::json& body) {
  if (action == "create") return impl_->api_create(body);
  if (action == "get") return impl_->api_get(body);
  if (action == "list") return impl_->api_list(body);
  auto a = campaigns::action_from_string(action);
  if (!a)
    return make_error(ErrorCode::bad_request,
                      "unknown campaigns action '" + protocol::printable(action) + "'");
  return impl_->api_action(*a, body);
}

bool CampaignService::on_reply(const std::string& hw, const std::string& command_id, bool success,
                               const std::string& output) {
  Impl& m = *impl_;
  for (auto& [id, a] : m.active_) {
    auto it = a->by_command_id.find(command_id);
    if (it == a->by_command_id.end()) continue;
    const std::size_t i = it->second;
    if (a->snap.executions[i].hardware_id != hw) return false;  // another device's id
    const TimeMs now = m.clock_.now_ms();
    auto rr = campaigns::on_reply(a->snap, hw, command_id, success, now);
    if (rr.disposition == campaigns::Disposition::not_current) {
      m.record_late_reply(hw, command_id, success, output, now);
      return true;
    }
    if (rr.disposition != campaigns::Disposition::applied) return true;
    campaigns::apply(a->snap, rr.result);
    a->side[i].output = output;
    a->side[i].replied_at = now;
    a->dirty.insert(i);
    a->changed_since_event = true;
    m.replies_since_tick_ = true;
    if (a->snap.index_current() && a->snap.index.count(ExecState::sent) == 0) m.tick_soon_ = true;
    return true;
  }
  // Not a campaign we drive: a superseded attempt or a finished campaign (it changes nothing except the
  // attempt history), or the current attempt of a campaign another instance drives: that one applies it
  // from the campaign's inbox (PROTOCOL §7).
  const TimeMs now = m.clock_.now_ms();
  auto recorded = m.record_late_reply(hw, command_id, success, output, now);
  if (recorded) {
    if (auto in = m.store_.add_to_inbox(hw, command_id, success, output, now); !in)
      log_limited(spdlog::level::err, "campaign.inbox_add", {{"hardware_id", hw}, {"command_id", command_id}},
                  "campaign: cannot put a reply into the inbox: {}", in.error().message);
    return true;
  }
  auto ref = m.store_.execution_by_command_id(command_id);
  if (!ref || !*ref) return false;
  return (*ref)->hardware_id == hw;
}

std::vector<PendingSend> CampaignService::in_flight(const std::string& hw, TimeMs now) {
  Impl& m = *impl_;
  std::vector<PendingSend> out;
  for (const auto& [id, a] : m.active_) {
    auto it = a->snap.index_by_hardware_id.find(hw);
    if (it == a->snap.index_by_hardware_id.end()) continue;
    const Execution& e = a->snap.executions[it->second];
    if (e.state != ExecState::sent || !e.command_id || !e.sent_at) continue;
    if (*e.sent_at + a->snap.doc.reply_timeout_s * 1000 <= now) continue;  // timed out: not wanted
    auto text = line_for(a->line, *e.command_id);
    if (!text) continue;
    out.push_back(PendingSend{*e.command_id, std::move(*text), *e.sent_at});
  }
  // Those of campaigns another instance drives, as it committed them (PROTOCOL §7: the answer does not
  // depend on which instance the pull reached).
  for (const auto& [f, e] : m.sent_elsewhere(hw, now)) {
    auto text = line_for(f.line, *e.command_id);
    if (!text) continue;
    out.push_back(PendingSend{*e.command_id, std::move(*text), *e.sent_at});
  }
  std::sort(out.begin(), out.end(),
            [](const PendingSend& x, const PendingSend& y) { return x.created_at < y.created_at; });
  return out;
}

void CampaignService::handed_over(const std::string& hw, const std::vector<std::string>& command_ids,
                                  TimeMs now) {
  Impl& m = *impl_;
  for (const auto& command_id : command_ids) {
    bool ours = false;
    for (auto& [id, a] : m.active_) {
      auto it = a->by_command_id.find(command_id);
      if (it == a->by_command_id.end() || a->snap.executions[it->second].hardware_id != hw) continue;
      Side& side = a->side[it->second];
      if (side.resent_id != command_id) {
        side.resent_id = command_id;
        side.resent = 0;
      }
      side.last_sent_at = now;
      ours = true;
      break;
    }
    // An attempt of a campaign driven elsewhere (in_flight listed it).
    if (!ours && m.shared_store_) m.foreign_send(command_id).last_sent_at = now;
  }
}

int CampaignService::redeliver(const std::string& hw, TimeMs now, TimeMs sent_before, int max_publishes) {
  Impl& m = *impl_;
  int n = 0;
  for (auto& [id, a] : m.active_) {
    auto it = a->snap.index_by_hardware_id.find(hw);
    if (it == a->snap.index_by_hardware_id.end()) continue;
    const Execution& e = a->snap.executions[it->second];
    if (e.state != ExecState::sent || !e.command_id || !e.sent_at) continue;
    if (*e.sent_at + a->snap.doc.reply_timeout_s * 1000 <= now) continue;
    Side& side = a->side[it->second];
    if (side.resent_id != *e.command_id) {
      side.resent_id = *e.command_id;
      side.resent = 0;
      side.last_sent_at.reset();
    }
    if (side.last_sent_at.value_or(*e.sent_at) > sent_before || 1 + side.resent >= max_publishes) continue;
    ++side.resent;
    side.last_sent_at = now;
    m.enqueue_send(*a, hw, *e.command_id, e.attempt);
    ++n;
  }
  // Attempts of campaigns another instance drives, by the same rule; the re-publications are counted
  // by each instance that makes them.
  for (const auto& [f, e] : m.sent_elsewhere(hw, now)) {
    Impl::ForeignSend& fs = m.foreign_send(*e.command_id);
    if (fs.last_sent_at.value_or(*e.sent_at) > sent_before || 1 + fs.resent >= max_publishes) continue;
    ++fs.resent;
    fs.last_sent_at = now;
    m.enqueue_foreign(f, hw, e);
    ++n;
  }
  return n;
}

void CampaignService::on_version(const std::string& hw, const std::string& version) {
  Impl& m = *impl_;
  const TimeMs now = m.clock_.now_ms();
  for (auto& [id, a] : m.active_) {
    if (!needs_version(a->snap.doc)) continue;
    auto rr = campaigns::on_version_reported(a->snap, hw, version, now);
    if (rr.disposition != campaigns::Disposition::applied) continue;
    for (const auto& e : rr.result.changes) {
      auto it = a->snap.index_by_hardware_id.find(e.hardware_id);
      if (it != a->snap.index_by_hardware_id.end()) a->dirty.insert(it->second);
    }
    campaigns::apply(a->snap, rr.result);
    a->changed_since_event = true;
    m.replies_since_tick_ = true;
  }
  // Campaigns another instance drives get the report through their version inbox (PROTOCOL §7): their
  // driver applies it within k_inbox_poll_ms. Queued executions too: the version a device had when its
  // attempt is sent decides what counts for "latest".
  for (const auto& [f, e] : m.elsewhere(hw)) {
    if (!f.needs_version) continue;
    if (auto st = m.store_.add_version_report({e.campaign_id, hw, version, now}); !st)
      log_limited(spdlog::level::err, "campaign.version_inbox_add",
                  {{"hardware_id", hw}, {"campaign_id", e.campaign_id}},
                  "campaign: cannot put a version report into the version inbox: {}", st.error().message);
  }
}

void CampaignService::tick() { impl_->tick_all(); }

std::uint64_t CampaignService::sends() const { return impl_->sends_; }

void CampaignService::flush() {
  Impl& m = *impl_;
  const TimeMs now = m.clock_.now_ms();
  if (m.tick_soon_ || (m.replies_since_tick_ && now - m.last_tick_at_ >= k_reply_tick_spacing_ms)) {
    m.tick_all();  // its commits also write the replies of every campaign it commits
  }
  if (now - m.last_write_at_ >= k_write_spacing_ms) m.write_batched();
}

}  // namespace dispatch::service
