// commands/send|get|list|cancel (PROTOCOL §3) and the outbox that publishes deliveries.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "protocol/command_line.h"
#include "protocol/core/secrets.h"
#include "protocol/core/time.h"
#include "protocol/errors.h"
#include "protocol/ids.h"
#include "protocol/json_request.h"
#include "service/api_util.h"
#include "service/app.h"
#include "service/failpoint.h"
#include "storage/commands.h"
#include "storage/database.h"
#include "storage/devices.h"
#include "storage/idempotency.h"
#include "storage/packages.h"

namespace dispatch::service {

using core::ErrorCode;
using core::make_error;
using core::Result;

namespace {

nlohmann::json opt_time(const std::optional<core::TimeMs>& t) {
  return t ? nlohmann::json(core::format_rfc3339(*t)) : nlohmann::json(nullptr);
}

nlohmann::json command_json(const storage::CommandRow& c, const storage::DeliveryCounts& counts) {
  nlohmann::json j;
  j["command_id"] = c.id;
  j["type"] = c.type;
  j["execution"] = c.execution;
  j["command"] = c.command;
  j["arguments"] = c.arguments;
  if (!c.package_id.empty()) j["package_id"] = c.package_id;
  j["description"] = c.description;
  j["ttl_s"] = c.ttl_s ? nlohmann::json(*c.ttl_s) : nlohmann::json(nullptr);
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

Result<nlohmann::json> App::api_commands_send(const Json& body, const InboundMessage&) {
  // Guard clauses: every field is checked before anything is stored.
  auto type_name = protocol::required_string(body, "type");
  if (!type_name) return type_name.error();
  auto type = protocol::command_type_from_string(*type_name);
  if (!type) {
    return make_error(ErrorCode::bad_request,
                      "field 'type' must be one of exec, firmware, reboot, shutdown, ping, health");
  }
  auto exec_name = protocol::optional_string(body, "execution");
  if (!exec_name) return exec_name.error();
  auto execution = protocol::execution_from_string(exec_name->value_or("sync"));
  if (!execution) return make_error(ErrorCode::bad_request, "field 'execution' must be one of sync, async");
  auto command = protocol::optional_string(body, "command");
  if (!command) return command.error();
  auto arguments = protocol::optional_string_array(body, "arguments");
  if (!arguments) return arguments.error();
  auto package_id = protocol::optional_object_id(body, "package_id");
  if (!package_id) return package_id.error();
  auto hardware_ids = protocol::optional_hardware_id_array(body, "hardware_ids");
  if (!hardware_ids) return hardware_ids.error();
  auto tags = parse_tags(body, "tags");
  if (!tags) return tags.error();
  auto ttl = protocol::optional_int(body, "ttl_s", 1, 365LL * 86400);
  if (!ttl) return ttl.error();
  auto description = protocol::optional_string(body, "description");
  if (!description) return description.error();
  auto request_id = protocol::optional_object_id(body, "request_id");
  if (!request_id) return request_id.error();

  const bool has_args = arguments->has_value() && !(*arguments)->empty();
  std::string cmd = command->value_or("");
  switch (*type) {
    case protocol::CommandType::exec:
      if (cmd.empty()) return make_error(ErrorCode::bad_request, "type 'exec' needs a non-empty 'command'");
      break;
    case protocol::CommandType::firmware:
      if (!cmd.empty() || has_args) {
        return make_error(ErrorCode::bad_request,
                          "type 'firmware' takes 'package_id' (or none for the latest package), not "
                          "'command' or 'arguments'");
      }
      break;
    default:
      if (!cmd.empty() || has_args) {
        return make_error(ErrorCode::bad_request,
                          fmt::format("type '{}' takes no 'command' or 'arguments'", *type_name));
      }
      if (package_id->has_value()) {
        return make_error(ErrorCode::bad_request, fmt::format("type '{}' takes no 'package_id'", *type_name));
      }
  }
  if (hardware_ids->empty() && tags->empty()) {
    return make_error(ErrorCode::bad_request, "no targets: give 'hardware_ids' or 'tags'");
  }

  std::string fingerprint = request_fingerprint(body);
  if (*request_id) {
    auto seen = idempotency_->find("commands/send", **request_id);
    if (!seen) return seen.error();
    if (*seen) {
      if ((*seen)->fingerprint != fingerprint) {
        return make_error(
            ErrorCode::conflict,
            fmt::format("request_id '{}' was already used with a different request", **request_id));
      }
      return Json::parse((*seen)->answer);
    }
  }

  if (*type == protocol::CommandType::firmware && package_id->has_value()) {
    auto pkg = packages_->get(**package_id);
    if (!pkg) {
      if (pkg.error().code == ErrorCode::not_found) {
        return make_error(ErrorCode::not_found, fmt::format("no package '{}'", **package_id));
      }
      return pkg.error();
    }
    if (!pkg->available || pkg->state != "ready") {
      return make_error(ErrorCode::conflict, fmt::format("package '{}' is not available", **package_id));
    }
  }

  const core::TimeMs now = clock_.now_ms();
  storage::CommandRow row;
  row.id = core::new_id(now);
  row.type = *type_name;
  row.execution = std::string(protocol::to_string(*execution));
  row.command = *type == protocol::CommandType::firmware ? package_id->value_or("") : cmd;
  row.arguments = arguments->value_or(std::vector<std::string>{});
  row.package_id = package_id->value_or("");
  row.description = description->value_or(default_description(*type));
  row.ttl_s = ttl->value_or(config_.commands_default_ttl_s);
  row.expires_at = now + *row.ttl_s * 1000;
  row.created_at = now;
  row.request_id = *request_id;
  if (*request_id) row.request_hash = fingerprint;

  protocol::CommandLine line{row.id, *type, *execution, row.command, row.arguments};
  auto text = protocol::encode(line);
  if (!text) return text.error();

  // Targets: the named devices that exist plus every device with one of the tags, each once.
  auto known = devices_->existing(*hardware_ids);
  if (!known) return known.error();
  auto tagged = devices_->hardware_ids_with_tags(*tags);
  if (!tagged) return tagged.error();
  std::set<std::string> targets(known->begin(), known->end());
  targets.insert(tagged->begin(), tagged->end());
  std::vector<std::string> unknown;
  {
    std::set<std::string> known_set(known->begin(), known->end());
    std::set<std::string> asked(hardware_ids->begin(), hardware_ids->end());
    for (const auto& id : asked) {
      if (!known_set.count(id)) unknown.push_back(id);
    }
  }
  if (targets.empty()) {
    return make_error(ErrorCode::not_found, unknown.empty()
                                                ? "no registered device matches the targets"
                                                : fmt::format("no registered device matches the targets "
                                                              "({} unknown hardware ids)",
                                                              unknown.size()));
  }

  std::vector<storage::DeliveryRow> deliveries;
  deliveries.reserve(targets.size());
  for (const auto& hw : targets) {
    storage::DeliveryRow d;
    d.command_id = row.id;
    d.hardware_id = hw;
    d.command_line = *text;
    d.expires_at = row.expires_at;
    d.created_at = now;
    deliveries.push_back(std::move(d));
  }
  nlohmann::json answer{{"command_id", row.id},
                        {"devices_matched", targets.size() + unknown.size()},
                        {"devices_scheduled", deliveries.size()},
                        {"unknown_hardware_ids", unknown}};
  // devices_matched counts every target the request named or selected; devices_scheduled those that
  // got a delivery. They differ exactly by the unknown hardware ids listed.
  auto st = db_.transaction([&]() -> core::Status {
    if (auto s = commands_->create_with_deliveries(row, deliveries); !s) return s;
    if (*request_id)
      return idempotency_->put("commands/send", **request_id, fingerprint, protocol::dump_json(answer), now);
    return {};
  });
  if (!st) return st.error();
  batch_committed_deliveries_ = true;
  for (auto& d : deliveries) {
    enqueue_delivery(d.command_id, d.hardware_id, d.command_line, d.expires_at);
  }
  spdlog::info("command {} ({}) scheduled for {} devices", row.id, row.type, deliveries.size());
  return answer;
}

Result<nlohmann::json> App::api_commands_get(const Json& body, const InboundMessage&) {
  auto id = protocol::required_object_id(body, "command_id");
  if (!id) return id.error();
  auto c = commands_->get(*id);
  if (!c) return c.error();
  auto counts = commands_->counts(*id);
  if (!counts) return counts.error();
  auto ds = commands_->deliveries(*id);
  if (!ds) return ds.error();
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& d : *ds) {
    devices.push_back({{"hardware_id", d.hardware_id},
                       {"state", d.state},
                       {"output", d.output},
                       {"trimmed", d.trimmed},
                       {"sent_at", opt_time(d.sent_at)},
                       {"replied_at", opt_time(d.replied_at)},
                       {"attempts", d.attempts}});
  }
  return nlohmann::json{{"command", command_json(*c, *counts)}, {"devices", devices}};
}

Result<nlohmann::json> App::api_commands_list(const Json& body, const InboundMessage&) {
  storage::CommandQuery q;
  auto limit = protocol::optional_int(body, "limit", 1, 1000);
  if (!limit) return limit.error();
  q.limit = static_cast<int>(limit->value_or(100));
  auto after = protocol::optional_object_id(body, "after");
  if (!after) return after.error();
  q.after = *after;
  if (body.contains("hardware_id") && !body["hardware_id"].is_null()) {
    auto hw = protocol::required_hardware_id(body, "hardware_id");
    if (!hw) return hw.error();
    q.hardware_id = *hw;
  }
  auto rows = commands_->list(q);
  if (!rows) return rows.error();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : *rows) {
    auto counts = commands_->counts(c.id);
    if (!counts) return counts.error();
    list.push_back(command_json(c, *counts));
  }
  nlohmann::json out{{"commands", list}};
  if (static_cast<int>(rows->size()) == q.limit && !rows->empty()) out["next_after"] = rows->back().id;
  return out;
}

Result<nlohmann::json> App::api_commands_cancel(const Json& body, const InboundMessage&) {
  auto id = protocol::required_object_id(body, "command_id");
  if (!id) return id.error();
  auto n = commands_->cancel(*id);
  if (!n) return n.error();
  // Deliveries still in the outbox are dropped when they come up (their row is no longer queued).
  canceled_commands_.insert(*id);
  return nlohmann::json{{"command_id", *id}, {"canceled_deliveries", *n}};
}

}  // namespace dispatch::service
