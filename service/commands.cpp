#include "service/commands.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "protocol/command_line.h"
#include "protocol/core/secrets.h"
#include "protocol/core/time.h"
#include "protocol/errors.h"
#include "protocol/reply_line.h"
#include "service/cluster.h"
#include "service/logging.h"
#include "service/router.h"
#include "storage/commands.h"
#include "storage/database.h"
#include "storage/devices.h"
#include "storage/instance_starts.h"
#include "storage/packages.h"

namespace dispatch::service {

using core::ErrorCode;
using core::make_error;
using core::Result;
using nlohmann::json;
using protocol::TopicKind;

namespace {

// Enough to rebuild any realistic backlog at start; more waits for the next restart or presence.
constexpr int k_outbox_reload_limit = 2'000'000;

constexpr const char* k_reply_latency = "dispatch_command_reply_seconds";
constexpr const char* k_reply_latency_help =
    "Time from a command delivery's send (the broker's acknowledgement) to the device's reply, seconds "
    "(command deliveries; campaign attempts are not included)";
// 10 ms .. 1 h: a device on a good link answers in tens of milliseconds, one that was offline in hours.
std::vector<double> reply_latency_buckets() {
  return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
}
constexpr core::TimeMs k_expiry_period_ms = 1000;
// Instance leases read per takeover scan, and deliveries taken over per lapsed instance and scan (the
// rest in the next scans).
constexpr int k_instance_scan_limit = 1000;
constexpr int k_takeover_batch = 100'000;
constexpr std::size_t k_ack_batch = 2000;
constexpr core::TimeMs k_ack_flush_ms = 100;
constexpr int k_pending_max = 50;

// The longest prefix of s of at most n bytes that does not split a UTF-8 sequence.
std::string utf8_prefix(const std::string& s, std::size_t n) {
  if (n >= s.size()) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

json opt_time(const std::optional<core::TimeMs>& t) {
  return t ? json(core::format_rfc3339(*t)) : json(nullptr);
}

json command_json(const storage::CommandRow& c, const storage::DeliveryCounts& counts) {
  json j;
  j["command_id"] = c.id;
  j["type"] = c.type;
  j["execution"] = c.execution;
  j["command"] = c.command;
  j["arguments"] = c.arguments;
  if (!c.package_id.empty()) j["package_id"] = c.package_id;
  j["description"] = c.description;
  j["ttl_s"] = c.ttl_s ? json(*c.ttl_s) : json(nullptr);
  j["expires_at"] = opt_time(c.expires_at);
  j["created_at"] = core::format_rfc3339(c.created_at);
  j["canceled"] = c.canceled;
  j["counts"] = {{"queued", counts.queued}, {"sent", counts.sent},       {"succeeded", counts.succeeded},
                 {"failed", counts.failed}, {"expired", counts.expired}, {"canceled", counts.canceled},
                 {"total", counts.total()}};
  return j;
}

std::string default_description(protocol::CommandType t) {
  switch (t) {
    case protocol::CommandType::exec:
      return "Execute";
    case protocol::CommandType::firmware:
      return "Firmware update";
    case protocol::CommandType::reboot:
      return "Reboot";
    case protocol::CommandType::shutdown:
      return "Shutdown";
    case protocol::CommandType::ping:
      return "Ping";
    case protocol::CommandType::health:
      return "Health report";
  }
  return "";
}

}  // namespace

CommandsModule::CommandsModule(const Config& config, core::Clock& clock, storage::Database& db,
                               Publisher& publisher, const protocol::Topics& topics, Outbox& outbox,
                               BatchEffects& effects)
    : config_(config),
      clock_(clock),
      db_(db),
      publisher_(publisher),
      topics_(topics),
      outbox_(outbox),
      effects_(effects),
      commands_(std::make_unique<storage::CommandStore>(db)),
      devices_(std::make_unique<storage::DeviceStore>(db)),
      packages_(std::make_unique<storage::PackageStore>(db)),
      idempotency_(db),
      instance_id_(instance_id(config)) {}

CommandsModule::~CommandsModule() = default;

void CommandsModule::register_routes(Router& router) {
  router.add_api("commands", "send", [this](const json& b) { return send(b); });
  router.add_api("commands", "get", [this](const json& b) { return get(b); });
  router.add_api("commands", "list", [this](const json& b) { return list(b); });
  router.add_api("commands", "cancel", [this](const json& b) { return cancel(b); });
  // The reply topic's transport limit (PROTOCOL §1.2): up to it a reply is recorded, its output cut to
  // commands.max_output_bytes; only a larger message is dropped (and counted by the router).
  router.add_device(TopicKind::command_reply, static_cast<std::size_t>(config_.commands_max_reply_bytes),
                    [this](const std::string& hw, const InboundMessage& m) { on_reply(hw, m); });
  router.add_device_request(TopicKind::command_pending, TopicKind::command_pending_reply,
                            static_cast<std::size_t>(config_.api_max_request_bytes),
                            [this](const std::string& hw, const json& b) { return pending(hw, b); });
}

core::Status CommandsModule::start() {
  const core::TimeMs started_at = clock_.now_ms();
  listening_since_ = started_at;
  restart_epoch_ = started_at;
  // Committed before anything is published: every other instance applies the restart exception from
  // this moment once it reads it (on_timer), since a device's next messages may reach any of them.
  if (auto st = storage::InstanceStartStore(db_).record(instance_id_, started_at); !st) {
    spdlog::error("cluster: cannot record this instance's start: {}", st.error().message);
    return st;
  }
  // Every queued delivery, other instances' too (same command ids: a device may get a line twice, never
  // two ids): a reply the broker handed to an instance killed before it committed is lost (PROTOCOL
  // §1.3), and publishing the still-queued lines again at a restart is what recovers most of those on a
  // fleet that does not ping. Lapsed instances' rows are taken over by take_over_lapsed() as well.
  auto queued = commands_->deliveries_to_publish(clock_.now_ms(), k_outbox_reload_limit);
  if (!queued) return queued.error();
  for (const auto& d : *queued) enqueue(d.command_id, d.hardware_id, d.command_line, d.expires_at);
  if (!queued->empty()) spdlog::info("outbox: {} committed deliveries to publish", queued->size());
  // Lists of targets a send left to write (killed while expanding): on SQLite every list (one process
  // writes the file), on PostgreSQL this instance's (a lapsed instance's are taken over in on_timer).
  auto lists = commands_->take_over_targets(
      db_.backend() == storage::Backend::sqlite ? std::nullopt : std::optional(instance_id_), instance_id_);
  if (!lists) return lists.error();
  for (auto& t : *lists) {
    spdlog::info("command {}: {} targets still to write as deliveries", t.command_id, t.remaining());
    expansions_.push_back(std::move(t));
  }
  return {};
}

void CommandsModule::enqueue(std::string command_id, std::string hw, std::string line,
                             std::optional<core::TimeMs> expires_at) {
  OutboxItem item;
  item.owner = this;
  item.command_id = std::move(command_id);
  item.hardware_id = std::move(hw);
  item.payload = std::move(line);
  item.expires_at = expires_at;
  outbox_.enqueue(std::move(item));
  ++counters_.deliveries_enqueued;
}

bool CommandsModule::still_wanted(const OutboxItem& item) { return canceled_.count(item.command_id) == 0; }

void CommandsModule::acknowledged(std::vector<OutboxItem> items) {
  for (auto& item : items) {
    if (!acked_published_at_ || item.published_at < *acked_published_at_)
      acked_published_at_ = item.published_at;
    acked_.emplace_back(std::move(item.command_id), std::move(item.hardware_id));
  }
}

bool CommandsModule::expanding() const { return !expansions_.empty() && clock_.now_ms() >= expand_retry_at_; }

void CommandsModule::expand_next(core::TimeMs now) {
  if (expansions_.empty() || now < expand_retry_at_) return;
  storage::CommandTargets& t = expansions_.front();
  const auto n =
      static_cast<std::size_t>(std::min<std::int64_t>(config_.commands_expand_chunk, t.remaining()));
  // Written expired when the command outlived its ttl before its turn (a restart long after the send):
  // nothing to publish then, and the counts say so.
  const bool expired = t.expires_at && now >= *t.expires_at;
  std::vector<storage::DeliveryRow> rows(n);
  for (std::size_t k = 0; k < n; ++k) {
    storage::DeliveryRow& d = rows[k];
    d.command_id = t.command_id;
    d.hardware_id = t.hardware_ids[static_cast<std::size_t>(t.expanded) + k];
    d.command_line = t.command_line;
    d.state = expired ? "expired" : "queued";
    d.expires_at = t.expires_at;
    d.created_at = t.created_at;
  }
  DISPATCH_FAILPOINT("before_expansion_commit");
  auto written = commands_->expand_targets(t, rows);
  if (!written) {
    log_limited(spdlog::level::err, "commands.expand", {{"command_id", t.command_id}},
                "cannot write the next {} deliveries: {} (retrying in a second)", n, written.error().message);
    expand_retry_at_ = now + 1000;
    return;
  }
  if (!*written) {
    // The list moved on without us: canceled or written to the end (gone), taken over by another instance
    // (our lease lapsed), or its cursor moved (we took it back in a race with that takeover). Ours again
    // from where it stands, or not ours to write any more.
    auto now_listed = commands_->targets(t.command_id);
    if (!now_listed) {
      log_limited(spdlog::level::err, "commands.expand", {{"command_id", t.command_id}},
                  "cannot read the command's targets: {} (retrying in a second)", now_listed.error().message);
      expand_retry_at_ = now + 1000;
      return;
    }
    if (*now_listed && (*now_listed)->owner == instance_id_ && (*now_listed)->expanded != t.expanded) {
      t = std::move(**now_listed);
      return;
    }
    log_info({{"command_id", t.command_id}}, "command's remaining {} targets are no longer ours to write",
             t.remaining());
    expansions_.erase(expansions_.begin());
    return;
  }
  effects_.committed("after_expansion_commit", db_.in_transaction());
  t.expanded += static_cast<std::int64_t>(n);
  if (!expired) {
    for (auto& d : rows)
      enqueue(std::move(d.command_id), std::move(d.hardware_id), std::move(d.command_line), d.expires_at);
  }
  if (t.remaining() == 0) expansions_.erase(expansions_.begin());
}

void CommandsModule::flush(bool force) {
  const core::TimeMs now = clock_.now_ms();
  expand_next(now);
  // Acknowledgements only move deliveries from queued to sent, which nobody outside sees: write them in
  // batches (one fsync per batch, not per loop turn). Losing a batch in a crash only means the same
  // command id is published once more.
  if (acked_.empty() || !(force || acked_.size() >= k_ack_batch || now - last_ack_flush_ >= k_ack_flush_ms))
    return;
  DISPATCH_FAILPOINT("before_mark_sent");
  // sent_at is when the batch's first line was handed to the broker, not now: the restart exception of
  // presence redelivery re-publishes the sends from before an instance's start (a reply to them may have
  // died with it), and a mark written late, after the restart of the instance that lost the reply (a loop
  // busy for seconds under load), would hide such a send from every instance for good.
  const core::TimeMs sent_at = std::min(now, acked_published_at_.value_or(now));
  if (auto n = commands_->mark_sent(acked_, sent_at); !n) {
    spdlog::error("cannot mark {} deliveries sent: {} (they stay queued and are published again)",
                  acked_.size(), n.error().message);
  }
  acked_.clear();
  acked_published_at_.reset();
  last_ack_flush_ = now;
}

void CommandsModule::take_over_lapsed(core::TimeMs now) {
  storage::LeaseStore leases(db_);
  auto rows = leases.list(k_instance_lease_prefix, k_instance_scan_limit);
  if (!rows) {
    spdlog::error("cluster: cannot list instance leases: {}", rows.error().message);
    return;
  }
  const std::string prefix = k_instance_lease_prefix;
  for (const auto& lease : *rows) {
    const std::string other = lease.name.substr(prefix.size());
    if (other == instance_id_ || lease.expires_at > now) continue;
    note_lapse(other, lease.expires_at, now);
    auto owned = commands_->has_queued_owned_by(other);
    if (!owned || !*owned) continue;
    // The dead instance's lease, taken for the takeover: of several instances scanning, one wins.
    auto got = leases.acquire(lease.name, instance_id_, now, config_.cluster_lease_ttl_ms);
    if (!got) continue;
    std::vector<storage::DeliveryRow> taken;
    std::vector<storage::CommandTargets> lists;
    auto st = db_.transaction([&]() -> core::Status {
      if (auto fenced = leases.check(lease.name, instance_id_, got->token); !fenced) return fenced;
      auto moved = commands_->take_over_queued(other, instance_id_, k_takeover_batch);
      if (!moved) return moved.error();
      taken = std::move(*moved);
      auto moved_lists = commands_->take_over_targets(other, instance_id_);
      if (!moved_lists) return moved_lists.error();
      lists = std::move(*moved_lists);
      return {};
    });
    // Released at once, so that the instance can take its own lease back when it restarts.
    (void)leases.release(lease.name, instance_id_, got->token);
    if (!st) {
      spdlog::error("cluster: cannot take over the queued deliveries of instance {}: {}", other,
                    st.error().message);
      continue;
    }
    for (const auto& d : taken) enqueue(d.command_id, d.hardware_id, d.command_line, d.expires_at);
    std::int64_t targets = 0;
    for (auto& t : lists) {
      targets += t.remaining();
      expansions_.push_back(std::move(t));
    }
    spdlog::warn(
        "cluster: took over {} queued deliveries and {} targets still to write of instance {} (its lease "
        "lapsed)",
        taken.size(), targets, other);
  }
}

void CommandsModule::note_lapse(const std::string& other, core::TimeMs expired_at, core::TimeMs now) {
  // A lease released by a clean stop or by a takeover (0), or lapsed more than a retention period ago (an
  // instance gone for good), starts no epoch: a clean stop commits what it took, and the takeover's own
  // scan already noted the lapse.
  if (expired_at <= 0 || now - expired_at > storage::k_instance_start_retention_ms) return;
  storage::InstanceStartStore starts(db_);
  auto last = starts.get(other);
  if (!last) {
    spdlog::error("cluster: cannot read the start of instance {}: {}", other, last.error().message);
    return;
  }
  if (*last && **last >= expired_at) return;  // noted already (by us or another instance), or it restarted
  // The instance died (killed, or cut off) with replies it may have taken and never committed, and it
  // may never start again: its lapse is an epoch like a start (PROTOCOL §1.3's restart exception), so
  // that every instance publishes those devices' unanswered sends again at their next message.
  if (auto st = starts.record(other, now); !st) {
    spdlog::error("cluster: cannot record the lapse of instance {}: {}", other, st.error().message);
    return;
  }
  spdlog::warn(
      "cluster: the lease of instance {} lapsed: its unanswered sends are published again as after a "
      "restart",
      other);
}

void CommandsModule::learn_restart_epoch() {
  auto newest = storage::InstanceStartStore(db_).newest();
  if (!newest) {
    spdlog::error("cluster: cannot read the newest instance start: {}", newest.error().message);
    return;
  }
  if (!*newest || **newest <= restart_epoch_) return;
  restart_epoch_ = **newest;
  spdlog::info(
      "cluster: an instance started (or its lease lapsed) at {}: unanswered sends from before are published "
      "again at each device's next message",
      core::format_rfc3339(restart_epoch_));
}

void CommandsModule::on_timer() {
  const core::TimeMs now = clock_.now_ms();
  if (now - last_takeover_scan_ >= config_.cluster_lease_ttl_ms / 3) {
    last_takeover_scan_ = now;
    take_over_lapsed(now);
    // On SQLite only this process writes starts, so this reads our own (one indexed row, no change).
    learn_restart_epoch();
  }
  if (now - last_expiry_run_ < k_expiry_period_ms) return;
  last_expiry_run_ = now;
  if (auto n = commands_->expire(now); n && *n > 0) spdlog::info("{} deliveries expired", *n);
}

void CommandsModule::on_listening() { listening_since_ = clock_.now_ms(); }

void CommandsModule::on_presence(const std::string& hw, bool pull) {
  const core::TimeMs now = clock_.now_ms();
  const core::TimeMs gap = config_.commands_presence_gap_s * 1000;
  auto it = presence_.find(hw);
  bool fresh_stretch = pull;
  if (it == presence_.end()) {
    if (presence_.size() >= k_presence_memory) {
      presence_.clear();
      forgot_at_ = now;
    }
    Presence p;
    // Silence only counts while we listened (and remembered): before that we could not hear its pings.
    const core::TimeMs heard_from = std::max(listening_since_, forgot_at_.value_or(listening_since_));
    if (pull || now - heard_from > gap) {
      p.present_since = now;  // silent for a whole gap while we listened: it was away
      fresh_stretch = true;
    }
    // Otherwise first heard since this process started (the restart exception below starts its stretch
    // at the epoch), or forgotten (memory bound): assumed present, nothing is re-published until its
    // next gap or the next epoch.
    it = presence_.emplace(hw, p).first;
  } else if (pull || now - std::max(it->second.last_heard, listening_since_) > gap) {
    it->second.present_since = now;
    fresh_stretch = true;
  }
  Presence& p = it->second;
  p.last_heard = now;
  if (p.epoch_checked < restart_epoch_) {
    // The restart exception (PROTOCOL §1.3; at-least-once wins over run-once there): a reply the broker
    // handed to an instance that died before committing it is lost, and a shared subscription may hand
    // the device's later messages to any instance. So once per epoch (the newest start of any instance,
    // ours included) the device's stretch is taken to begin no earlier than the epoch: its unanswered
    // sends from before are published again once. Not for a device forgotten (memory bound) after the
    // epoch began: it may have been checked already; it is assumed present, as every forgotten device.
    p.epoch_checked = restart_epoch_;
    if (p.present_since) {
      p.present_since = std::max(*p.present_since, restart_epoch_);
      fresh_stretch = true;
    } else if (!forgot_at_ || *forgot_at_ < restart_epoch_) {
      p.present_since = restart_epoch_;
      fresh_stretch = true;
    }
  }
  // A pull answers with every unanswered command itself; queueing them too would deliver them twice.
  if (pull || config_.commands_redeliver_interval_s <= 0 || !p.present_since) return;
  // A device in one stretch is checked at most once per half interval (a chatty device, a reply per
  // command, costs one query per half interval): only sends from before its stretch qualify, and they
  // only become old enough with time.
  const core::TimeMs interval = config_.commands_redeliver_interval_s * 1000;
  if (!fresh_stretch && p.last_check && now - *p.last_check < interval / 2) return;
  p.last_check = now;
  const core::TimeMs sent_before = std::min(*p.present_since - 1, now - interval);
  const int max_publishes = config_.commands_redeliver_max_attempts;
  auto again = commands_->redeliverable(hw, now, sent_before, max_publishes);
  if (!again) {
    spdlog::error("cannot read what {} missed: {}", hw, again.error().message);
  } else {
    for (const auto& d : *again) enqueue(d.command_id, d.hardware_id, d.command_line, d.expires_at);
  }
  int others = 0;
  if (other_.redeliver) others = other_.redeliver(hw, now, sent_before, max_publishes);
  const std::size_t n = (again ? again->size() : 0) + static_cast<std::size_t>(others);
  if (n > 0) spdlog::info("{} missed {} unanswered sends: publishing them again", hw, n);
}

Result<json> CommandsModule::send(const json& body) {
  auto req = protocol::parse_send_command(body);
  if (!req) return req.error();
  auto replay = idempotency_.replay("commands/send", req->request_id, body);
  if (!replay) return replay.error();
  if (*replay) return **replay;

  if (req->type == protocol::CommandType::firmware && req->package_id) {
    auto pkg = packages_->get(*req->package_id);
    if (!pkg) {
      if (pkg.error().code == ErrorCode::not_found)
        return make_error(ErrorCode::not_found, fmt::format("no package '{}'", *req->package_id));
      return pkg.error();
    }
    if (!pkg->available || pkg->state != "ready")
      return make_error(ErrorCode::conflict, fmt::format("package '{}' is not available", *req->package_id));
  }

  const core::TimeMs now = clock_.now_ms();
  storage::CommandRow row;
  row.id = core::new_id(now);
  row.type = req->type_name;
  row.execution = std::string(protocol::to_string(req->execution));
  row.command = req->type == protocol::CommandType::firmware ? req->package_id.value_or("") : req->command;
  row.arguments = req->arguments;
  row.package_id = req->package_id.value_or("");
  row.description = req->description.value_or(default_description(req->type));
  row.ttl_s = req->ttl_s.value_or(config_.commands_default_ttl_s);
  row.expires_at = now + *row.ttl_s * 1000;
  row.created_at = now;
  row.request_id = req->request_id;
  if (req->request_id) row.request_hash = request_fingerprint(body);

  protocol::CommandLine line{row.id, req->type, req->execution, row.command, row.arguments};
  auto text = protocol::encode(line);
  if (!text) return text.error();

  // Targets: the named devices that exist plus every device with one of the tags, each once.
  auto known = devices_->existing(req->hardware_ids);
  if (!known) return known.error();
  auto tagged = devices_->hardware_ids_with_tags(req->tags);
  if (!tagged) return tagged.error();
  std::vector<std::string> targets = std::move(*known);
  targets.insert(targets.end(), std::make_move_iterator(tagged->begin()),
                 std::make_move_iterator(tagged->end()));
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  // The ids the request named that are no target (each once, sorted): unknown devices.
  std::vector<std::string> unknown;
  {
    std::set<std::string> asked(req->hardware_ids.begin(), req->hardware_ids.end());
    for (const auto& id : asked) {
      if (!std::binary_search(targets.begin(), targets.end(), id)) unknown.push_back(id);
    }
  }
  if (targets.empty()) {
    return make_error(ErrorCode::not_found, unknown.empty()
                                                ? "no registered device matches the targets"
                                                : fmt::format("no registered device matches the targets "
                                                              "({} unknown hardware ids)",
                                                              unknown.size()));
  }

  // The first chunk becomes deliveries now; the rest is committed as a list and written by flush() while
  // the first lines are published (Expansion, commands.h). Every target is decided in this transaction.
  const std::size_t scheduled = targets.size();
  const std::size_t first = std::min(scheduled, static_cast<std::size_t>(config_.commands_expand_chunk));
  std::vector<storage::DeliveryRow> deliveries(first);
  for (std::size_t k = 0; k < first; ++k) {
    storage::DeliveryRow& d = deliveries[k];
    d.command_id = row.id;
    d.hardware_id = std::move(targets[k]);
    d.command_line = *text;
    d.expires_at = row.expires_at;
    d.created_at = now;
  }
  std::optional<storage::CommandTargets> rest;
  if (scheduled > first) {
    rest.emplace();
    rest->command_id = row.id;
    rest->hardware_ids.assign(std::make_move_iterator(targets.begin() + static_cast<std::ptrdiff_t>(first)),
                              std::make_move_iterator(targets.end()));
    rest->command_line = *text;
    rest->expires_at = row.expires_at;
    rest->created_at = now;
    rest->owner = instance_id_;
  }
  // devices_matched counts every target the request named or selected; devices_scheduled those that
  // got a delivery (written now or listed to be written). They differ exactly by the unknown hardware ids.
  json answer{{"command_id", row.id},
              {"devices_matched", scheduled + unknown.size()},
              {"devices_scheduled", scheduled},
              {"unknown_hardware_ids", unknown}};
  auto st = db_.transaction([&]() -> core::Status {
    if (auto s = commands_->create_with_deliveries(row, deliveries, instance_id_); !s) return s;
    if (rest) {
      if (auto s = commands_->save_targets(*rest); !s) return s;
    }
    return idempotency_.record("commands/send", req->request_id, body, answer, now);
  });
  if (!st) return idempotency_.after_failed_create("commands/send", req->request_id, body, st.error());
  effects_.note("after_delivery_commit");
  // The rows are not needed any more: their strings move into the outbox.
  for (auto& d : deliveries)
    enqueue(std::move(d.command_id), std::move(d.hardware_id), std::move(d.command_line), d.expires_at);
  if (rest) expansions_.push_back(std::move(*rest));
  log_info({{"command_id", row.id}, {"request_id", row.request_id.value_or("")}},
           "command ({}) scheduled for {} devices", row.type, scheduled);
  return answer;
}

Result<json> CommandsModule::get(const json& body) {
  auto req = protocol::parse_get_command(body);
  if (!req) return req.error();
  // One snapshot (PostgreSQL; on SQLite only this loop writes): the list of targets not yet written is
  // read first, so a chunk written meanwhile by another instance shows among the deliveries, not lost.
  std::optional<storage::CommandTargets> unwritten;
  std::optional<storage::CommandRow> c;
  storage::DeliveryCounts counts;
  std::vector<storage::DeliveryRow> ds;
  auto read = db_.read([&]() -> core::Status {
    auto cr = commands_->get(req->command_id);
    if (!cr) return cr.error();
    c = std::move(*cr);
    auto t = commands_->targets(req->command_id);
    if (!t) return t.error();
    unwritten = std::move(*t);
    auto n = commands_->counts(req->command_id);
    if (!n) return n.error();
    counts = *n;
    auto rows = commands_->deliveries(req->command_id, req->page.after, req->page.limit);
    if (!rows) return rows.error();
    ds = std::move(*rows);
    return {};
  });
  if (!read) return read.error();
  // Targets not yet written are queued deliveries to the caller: they follow the written ones (the list
  // is written in hardware id order, the page's order).
  if (unwritten && ds.size() < static_cast<std::size_t>(req->page.limit)) {
    const std::string from = ds.empty() ? req->page.after.value_or("") : ds.back().hardware_id;
    const auto& ids = unwritten->hardware_ids;
    for (auto it = std::upper_bound(ids.begin() + static_cast<std::ptrdiff_t>(unwritten->expanded), ids.end(),
                                    from);
         it != ids.end() && ds.size() < static_cast<std::size_t>(req->page.limit); ++it) {
      storage::DeliveryRow d;
      d.command_id = unwritten->command_id;
      d.hardware_id = *it;
      d.created_at = unwritten->created_at;
      ds.push_back(std::move(d));
    }
  }
  auto answer = [&](std::size_t budget) {
    json devices = json::array();
    for (const auto& d : ds) {
      std::string shown = utf8_prefix(d.output, budget);
      budget -= shown.size();
      const bool partial = shown.size() < d.output.size();
      devices.push_back({{"hardware_id", d.hardware_id},
                         {"state", d.state},
                         {"output", std::move(shown)},
                         {"output_bytes", d.output.size()},
                         {"output_partial", partial},
                         {"trimmed", d.trimmed},
                         {"sent_at", opt_time(d.sent_at)},
                         {"replied_at", opt_time(d.replied_at)},
                         {"attempts", d.attempts}});
    }
    json out{{"command", command_json(*c, counts)}, {"devices", devices}};
    if (static_cast<int>(ds.size()) == req->page.limit && !ds.empty())
      out["next_after"] = ds.back().hardware_id;
    return out;
  };
  // Under a broker's Maximum Packet Size (MQTT 5 CONNACK) the shown output shrinks until the answer fits
  // with room for the envelope (escaping can make output longer than its bytes): the caller gets every
  // device of the page with less output (output_partial) rather than too_large. What still does not fit
  // (the command itself too large) becomes too_large in the router.
  const std::size_t max_packet = publisher_.max_packet_bytes();
  std::size_t budget = k_command_get_output_budget;
  if (max_packet == 0) return answer(budget);
  budget = std::min(budget, max_packet / 2);
  for (;;) {
    json out = answer(budget);
    if (budget == 0 || protocol::dump_json(out).size() + k_answer_envelope_bytes <= max_packet) return out;
    budget /= 2;
  }
}

Result<json> CommandsModule::list(const json& body) {
  auto req = protocol::parse_list_commands(body);
  if (!req) return req.error();
  storage::CommandQuery q;
  q.limit = req->page.limit;
  q.after = req->page.after;
  q.hardware_id = req->hardware_id;
  auto rows = commands_->list(q);
  if (!rows) return rows.error();
  json list = json::array();
  for (const auto& c : *rows) {
    auto counts = commands_->counts(c.id);
    if (!counts) return counts.error();
    list.push_back(command_json(c, *counts));
  }
  json out{{"commands", list}};
  if (static_cast<int>(rows->size()) == q.limit && !rows->empty()) out["next_after"] = rows->back().id;
  return out;
}

Result<json> CommandsModule::cancel(const json& body) {
  auto req = protocol::parse_command_ref(body);
  if (!req) return req.error();
  auto n = commands_->cancel(req->command_id);
  if (!n) return n.error();
  // Deliveries still in the outbox are dropped when they come up (their row is no longer queued).
  canceled_.insert(req->command_id);
  return json{{"command_id", req->command_id}, {"canceled_deliveries", *n}};
}

void CommandsModule::set_metrics(metrics::Registry* registry) {
  metrics_ = registry;
  if (metrics_)
    metrics_->describe(k_reply_latency, k_reply_latency_help, metrics::Registry::Type::histogram,
                       reply_latency_buckets());
}

void CommandsModule::on_reply(const std::string& hw, const InboundMessage& m) {
  auto reply = protocol::parse_reply_line(m.payload);
  if (!reply) {
    ++counters_.replies_malformed;
    log_limited(spdlog::level::warn, "reply.malformed", {{"hardware_id", hw}},
                "dropping a malformed reply: {}", reply.error().message);
    return;
  }
  std::string output = std::move(reply->output);
  bool trimmed = false;
  if (static_cast<std::int64_t>(output.size()) > config_.commands_max_output_bytes) {
    output.resize(static_cast<std::size_t>(config_.commands_max_output_bytes));
    trimmed = true;
  }
  const core::TimeMs now = clock_.now_ms();
  DISPATCH_FAILPOINT("before_reply_commit");
  // Campaign attempts are known in memory: check them first and spare the database a lookup.
  if (reply_claim_ && reply_claim_(hw, reply->id, reply->success, output)) return;
  core::TimeMs sent_at = now;
  auto outcome = commands_->record_reply(reply->id, hw, reply->success, output, trimmed, now, &sent_at);
  if (!outcome) {
    log_limited(spdlog::level::err, "reply.not_recorded", {{"hardware_id", hw}, {"command_id", reply->id}},
                "cannot record a reply: {}", outcome.error().message);
    return;
  }
  switch (*outcome) {
    case storage::ReplyOutcome::accepted: {
      effects_.note("after_reply_commit");
      if (metrics_) {
        metrics_
            ->histogram(k_reply_latency, k_reply_latency_help, reply_latency_buckets(),
                        {{"outcome", reply->success ? "succeeded" : "failed"}})
            .observe(static_cast<double>(std::max<core::TimeMs>(0, now - sent_at)) / 1000.0);
      }
      json ev{
          {"command_id", reply->id}, {"hardware_id", hw},  {"state", reply->success ? "succeeded" : "failed"},
          {"output", output},        {"trimmed", trimmed}, {"replied_at", core::format_rfc3339(now)}};
      OutMessage msg;
      msg.topic = topics_.command_event(reply->id);
      msg.payload = protocol::dump_json(ev);
      msg.qos = 1;
      publisher_.publish(std::move(msg));
      return;
    }
    case storage::ReplyOutcome::duplicate:
      ++counters_.replies_duplicate;
      return;
    case storage::ReplyOutcome::closed:
      ++counters_.replies_duplicate;
      log_debug({{"hardware_id", hw}, {"command_id", reply->id}}, "late reply (delivery already closed)");
      return;
    case storage::ReplyOutcome::unknown:
      ++counters_.replies_unknown;
      log_limited(spdlog::level::warn, "reply.unknown", {{"hardware_id", hw}, {"command_id", reply->id}},
                  "dropping a reply for a command id that was never sent to the device");
      return;
  }
}

Result<json> CommandsModule::pending(const std::string& hw, const json&) {
  const core::TimeMs now = clock_.now_ms();
  auto pending = commands_->pending_for_device(hw, now, k_pending_max);
  if (!pending) return pending.error();
  // Command deliveries and campaign attempts alike (PROTOCOL §1.3), oldest first, at most k_pending_max.
  struct Line {
    core::TimeMs created_at;
    std::string line;
    std::string command_id;
    bool ours;
  };
  std::vector<Line> all;
  for (const auto& d : *pending) all.push_back({d.created_at, d.command_line, d.command_id, true});
  if (other_.in_flight) {
    for (auto& s : other_.in_flight(hw, now))
      all.push_back({s.created_at, std::move(s.line), s.command_id, false});
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Line& a, const Line& b) { return a.created_at < b.created_at; });
  if (all.size() > static_cast<std::size_t>(k_pending_max))
    all.resize(static_cast<std::size_t>(k_pending_max));
  json lines = json::array();
  std::vector<storage::DeliveryKey> keys;
  std::vector<std::string> others;
  for (const auto& l : all) {
    lines.push_back(l.line);
    if (l.ours) {
      keys.emplace_back(l.command_id, hw);
    } else {
      others.push_back(l.command_id);
    }
  }
  // Handing a command over in the pending list is a delivery: count it before it becomes visible.
  if (!keys.empty()) {
    if (auto n = commands_->mark_sent(keys, now); !n) return n.error();
  }
  if (!others.empty() && other_.handed_over) other_.handed_over(hw, others, now);
  return json{{"commands", lines}};
}

}  // namespace dispatch::service
