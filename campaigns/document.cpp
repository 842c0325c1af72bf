#include "campaigns/document.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "protocol/command_line.h"
#include "protocol/core/time.h"
#include "protocol/ids.h"

namespace dispatch::campaigns {
namespace {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using nlohmann::json;

Status bad(std::string message) { return make_error(ErrorCode::bad_request, std::move(message)); }

// Optional-field readers: an absent or null field leaves `out` unchanged.
Status read_int(const json& obj, const char* key, const std::string& name, std::int64_t& out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_number()) return bad(name + " must be a number");
  if (it->is_number_float()) {
    const double v = it->get<double>();
    if (v != std::floor(v) || std::fabs(v) > 9.0e15) return bad(name + " must be an integer");
    out = static_cast<std::int64_t>(v);
    return {};
  }
  if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
    return bad(name + " must be an integer");
  }
  out = it->get<std::int64_t>();
  return {};
}

Status read_double(const json& obj, const char* key, const std::string& name, double& out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_number()) return bad(name + " must be a number");
  out = it->get<double>();
  return {};
}

Status read_bool(const json& obj, const char* key, const std::string& name, bool& out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_boolean()) return bad(name + " must be a boolean");
  out = it->get<bool>();
  return {};
}

// Returns nullptr for absent/null, the object otherwise; a non-object is an error.
Result<const json*> read_object(const json& obj, const char* key, const std::string& name) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return static_cast<const json*>(nullptr);
  if (!it->is_object()) return make_error(ErrorCode::bad_request, name + " must be an object");
  return &*it;
}

std::optional<CampaignType> type_from(std::string_view s) {
  if (s == "provisioning") return CampaignType::provisioning;
  if (s == "exec") return CampaignType::exec;
  if (s == "reboot") return CampaignType::reboot;
  if (s == "shutdown") return CampaignType::shutdown;
  if (s == "ping") return CampaignType::ping;
  if (s == "health") return CampaignType::health;
  return std::nullopt;
}

std::optional<ConditionOp> op_from(std::string_view s) {
  if (s == "eq") return ConditionOp::eq;
  if (s == "ne") return ConditionOp::ne;
  if (s == "lt") return ConditionOp::lt;
  if (s == "lte") return ConditionOp::lte;
  if (s == "gt") return ConditionOp::gt;
  if (s == "gte") return ConditionOp::gte;
  return std::nullopt;
}

bool valid_percent(double p) { return std::isfinite(p) && p >= 0.0 && p <= 100.0; }

Status parse_groups(const json& j, CampaignDocument& d) {
  auto it = j.find("groups");
  if (it == j.end() || !it->is_array() || it->empty()) return bad("groups must hold at least one group");
  int n = 0;
  for (const auto& g : *it) {
    ++n;
    const std::string label = "group " + std::to_string(n);
    if (!g.is_object()) return bad(label + " must be an object");
    GroupSpec spec;
    if (auto ids = g.find("hardware_ids"); ids != g.end() && !ids->is_null()) {
      if (!ids->is_array())
        return bad(label + " has an invalid hardware id '" + protocol::printable(ids->dump()) + "'");
      for (const auto& id : *ids) {
        if (!id.is_string())
          return bad(label + " has an invalid hardware id '" + protocol::printable(id.dump()) + "'");
        const auto& s = id.get_ref<const std::string&>();
        if (!protocol::valid_hardware_id(s)) {
          return bad(label + " has an invalid hardware id '" + protocol::printable(s) + "'");
        }
        spec.hardware_ids.push_back(s);
      }
    }
    if (auto tags = g.find("tags"); tags != g.end() && !tags->is_null()) {
      if (!tags->is_array()) return bad(label + " has an invalid tag");
      for (const auto& t : *tags) {
        if (!t.is_string() || t.get_ref<const std::string&>().empty())
          return bad(label + " has an invalid tag");
        spec.tags.push_back(t.get<std::string>());
      }
    }
    if (spec.hardware_ids.empty() && spec.tags.empty()) return bad(label + " is empty");
    d.groups.push_back(std::move(spec));
  }
  return {};
}

Status parse_rate(const json& j, CampaignDocument& d) {
  auto rate = read_object(j, "rate", "rate");
  if (!rate) return rate.error();
  if (*rate == nullptr) return {};
  const json& r = **rate;
  if (auto s = read_int(r, "per_minute", "rate.per_minute", d.rate.per_minute); !s) return s;
  if (d.rate.per_minute <= 0) return bad("rate.per_minute must be positive");
  auto ramp = read_object(r, "ramp", "rate.ramp");
  if (!ramp) return ramp.error();
  if (*ramp == nullptr) return {};
  Ramp rp;
  if (auto s = read_int(**ramp, "start_per_minute", "rate.ramp.start_per_minute", rp.start_per_minute); !s)
    return s;
  if (auto s = read_double(**ramp, "factor", "rate.ramp.factor", rp.factor); !s) return s;
  if (auto s = read_int(**ramp, "every_successes", "rate.ramp.every_successes", rp.every_successes); !s)
    return s;
  if (rp.start_per_minute <= 0) return bad("rate.ramp.start_per_minute must be positive");
  if (!std::isfinite(rp.factor) || rp.factor < 1.0) return bad("rate.ramp.factor must be at least 1");
  if (rp.every_successes <= 0) return bad("rate.ramp.every_successes must be positive");
  d.rate.ramp = rp;
  return {};
}

Status parse_policies(const json& j, CampaignDocument& d) {
  if (auto s = read_int(j, "batch_size", "batch_size", d.batch_size); !s) return s;
  if (d.batch_size <= 0) return bad("batch_size must be positive");

  auto success = read_object(j, "success", "success");
  if (!success) return success.error();
  if (*success != nullptr) {
    if (auto s = read_double(**success, "threshold_percent", "success.threshold_percent",
                             d.success.threshold_percent);
        !s) {
      return s;
    }
    if (auto s = read_bool(**success, "verify_version", "success.verify_version", d.success.verify_version);
        !s) {
      return s;
    }
  }
  if (!valid_percent(d.success.threshold_percent))
    return bad("success.threshold_percent must be between 0 and 100");

  auto abort = read_object(j, "abort", "abort");
  if (!abort) return abort.error();
  if (*abort != nullptr) {
    const json& a = **abort;
    AbortPolicy p;
    if (!a.contains("failure_percent") || a["failure_percent"].is_null())
      return bad("abort.failure_percent is required");
    if (auto s = read_double(a, "failure_percent", "abort.failure_percent", p.failure_percent); !s) return s;
    if (!valid_percent(p.failure_percent)) return bad("abort.failure_percent must be between 0 and 100");
    if (auto s = read_int(a, "min_finished", "abort.min_finished", p.min_finished); !s) return s;
    if (p.min_finished < 1) return bad("abort.min_finished must be at least 1");
    if (auto act = a.find("action"); act != a.end() && !act->is_null()) {
      if (*act == "pause") {
        p.action = AbortAction::pause;
      } else if (*act == "abort") {
        p.action = AbortAction::abort;
      } else {
        return bad("abort.action must be pause or abort");
      }
    }
    d.abort = p;
  }

  if (auto s = read_int(j, "reply_timeout_s", "reply_timeout_s", d.reply_timeout_s); !s) return s;
  if (d.reply_timeout_s <= 0) return bad("reply_timeout_s must be positive");

  auto retries = read_object(j, "retries", "retries");
  if (!retries) return retries.error();
  if (*retries != nullptr) {
    std::int64_t max = d.retries.max;
    if (auto s = read_int(**retries, "max", "retries.max", max); !s) return s;
    if (max < 0) return bad("retries.max must not be negative");
    if (max > 1000) return bad("retries.max must be at most 1000");
    d.retries.max = static_cast<int>(max);
    if (auto s = read_int(**retries, "backoff_s", "retries.backoff_s", d.retries.backoff_s); !s) return s;
    if (d.retries.backoff_s < 0) return bad("retries.backoff_s must not be negative");
  }

  auto between = read_object(j, "between_groups", "between_groups");
  if (!between) return between.error();
  if (*between != nullptr) {
    if (auto s = read_int(**between, "pause_minutes", "between_groups.pause_minutes",
                          d.between_groups_pause_minutes);
        !s) {
      return s;
    }
    if (d.between_groups_pause_minutes < 0) return bad("between_groups.pause_minutes must not be negative");
  }
  return {};
}

Status parse_window(const json& j, CampaignDocument& d) {
  auto window = read_object(j, "window", "window");
  if (!window) return window.error();
  if (*window == nullptr) return {};
  Window w;
  for (const char* key : {"not_before", "not_after"}) {
    auto it = (*window)->find(key);
    if (it == (*window)->end() || it->is_null()) continue;
    const std::string name = std::string("window.") + key;
    if (!it->is_string()) return bad(name + " is not an RFC 3339 time");
    auto t = core::parse_rfc3339(it->get_ref<const std::string&>());
    if (!t.ok()) return bad(name + " is not an RFC 3339 time");
    (std::string_view(key) == "not_before" ? w.not_before : w.not_after) = *t;
  }
  if (w.not_before && w.not_after && *w.not_before >= *w.not_after) {
    return bad("window.not_before must be before window.not_after");
  }
  d.window = w;
  return {};
}

Status parse_conditions(const json& j, CampaignDocument& d) {
  auto it = j.find("conditions");
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_array()) return bad("conditions must be an array");
  int n = 0;
  for (const auto& c : *it) {
    ++n;
    const std::string label = "condition " + std::to_string(n);
    if (!c.is_object()) return bad(label + " must be an object");
    Condition cond;
    std::int64_t group = 0;
    if (auto s = read_int(c, "group", label + " group", group); !s) return s;
    if (group < 1 || group > static_cast<std::int64_t>(d.groups.size())) {
      return bad(label + " names group " + std::to_string(group) + " but there are " +
                 std::to_string(d.groups.size()) + " groups");
    }
    cond.group = static_cast<int>(group);
    if (auto st = c.find("stage"); st != c.end() && !st->is_null()) {
      if (!st->is_string() || *st != "entry") {
        return bad(label + " has unknown stage '" +
                   protocol::printable(st->is_string() ? st->get<std::string>() : st->dump()) + "'");
      }
    }
    auto op = c.find("op");
    std::string op_text = op == c.end() ? "" : (op->is_string() ? op->get<std::string>() : op->dump());
    auto parsed_op = op_from(op_text);
    if (!parsed_op) return bad(label + " has unknown op '" + protocol::printable(op_text) + "'");
    cond.op = *parsed_op;
    auto prop = c.find("property");
    if (prop == c.end() || !prop->is_string() || prop->get_ref<const std::string&>().empty()) {
      return bad(label + " needs a property");
    }
    cond.property = prop->get<std::string>();
    auto value = c.find("value");
    if (value == c.end() || !(value->is_string() || value->is_number())) {
      return bad(label + " needs a string or number value");
    }
    cond.value = value->is_string() ? value->get<std::string>() : value->dump();
    if (auto s = read_bool(c, "ignorable", label + " ignorable", cond.ignorable); !s) return s;
    d.conditions.push_back(std::move(cond));
  }
  return {};
}

Status parse_command(const json& j, CampaignDocument& d) {
  if (auto it = j.find("execution"); it != j.end() && !it->is_null()) {
    if (*it == "sync") {
      d.execution = ExecutionMode::sync;
    } else if (*it == "async") {
      d.execution = ExecutionMode::async;
    } else {
      return bad("execution must be sync or async");
    }
  }
  if (auto it = j.find("package_id"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return bad("package_id must be a string or null");
    if (d.type == CampaignType::provisioning) d.package_id = it->get<std::string>();
  }
  if (auto it = j.find("command"); it != j.end() && !it->is_null() && d.type == CampaignType::exec) {
    if (!it->is_string()) return bad("command is required for type exec");
    d.command = it->get<std::string>();
  }
  if (d.type == CampaignType::exec && (!d.command || d.command->empty())) {
    return bad("command is required for type exec");
  }
  if (auto it = j.find("arguments"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return bad("arguments must be an array of strings");
    for (const auto& a : *it) {
      if (!a.is_string()) return bad("arguments must be an array of strings");
      if (d.type == CampaignType::exec) d.arguments.push_back(a.get<std::string>());
    }
  }
  // The same check as commands/send: what a device's single-space split would not give back could never
  // be published, so every execution would only time out (PROTOCOL §1.1).
  if (d.type == CampaignType::exec) {
    if (auto s = protocol::validate_exec(*d.command, d.arguments); !s) return s;
  }
  return {};
}

}  // namespace

std::string_view to_string(CampaignType t) {
  switch (t) {
    case CampaignType::provisioning:
      return "provisioning";
    case CampaignType::exec:
      return "exec";
    case CampaignType::reboot:
      return "reboot";
    case CampaignType::shutdown:
      return "shutdown";
    case CampaignType::ping:
      return "ping";
    case CampaignType::health:
      return "health";
  }
  return "exec";
}

std::string_view to_string(ExecutionMode m) { return m == ExecutionMode::sync ? "sync" : "async"; }
std::string_view to_string(AbortAction a) { return a == AbortAction::pause ? "pause" : "abort"; }

std::string_view to_string(ConditionOp op) {
  switch (op) {
    case ConditionOp::eq:
      return "eq";
    case ConditionOp::ne:
      return "ne";
    case ConditionOp::lt:
      return "lt";
    case ConditionOp::lte:
      return "lte";
    case ConditionOp::gt:
      return "gt";
    case ConditionOp::gte:
      return "gte";
  }
  return "eq";
}

std::string format_time(TimeMs t) {
  const TimeMs ms = ((t % 1000) + 1000) % 1000;
  std::string text = core::format_rfc3339(t - ms);
  if (ms == 0) return text;
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms));
  text.insert(text.size() - 1, frac);
  return text;
}

core::Result<CampaignDocument> parse_campaign_document(const nlohmann::json& j) {
  // nlohmann throws only on misuse; the guards below avoid it, the catch keeps the module boundary clean.
  try {
    if (!j.is_object()) return make_error(ErrorCode::bad_request, "campaign document must be a JSON object");
    CampaignDocument d;
    auto name = j.find("name");
    if (name == j.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
      return make_error(ErrorCode::bad_request, "name is required");
    }
    d.name = name->get<std::string>();
    auto type = j.find("type");
    if (type == j.end() || type->is_null()) return make_error(ErrorCode::bad_request, "type is required");
    auto parsed_type = type_from(type->is_string() ? type->get<std::string>() : std::string());
    if (!parsed_type) {
      return make_error(ErrorCode::bad_request,
                        "unknown type '" +
                            protocol::printable(type->is_string() ? type->get<std::string>() : type->dump()) +
                            "'");
    }
    d.type = *parsed_type;
    for (auto step :
         {parse_command, parse_groups, parse_rate, parse_policies, parse_window, parse_conditions}) {
      if (auto s = step(j, d); !s) return s.error();
    }
    return d;
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::bad_request, std::string("campaign document: ") + e.what());
  }
}

nlohmann::json to_json(const CampaignDocument& d) {
  json groups = json::array();
  for (const auto& g : d.groups) groups.push_back({{"hardware_ids", g.hardware_ids}, {"tags", g.tags}});
  json rate = {{"per_minute", d.rate.per_minute}};
  if (d.rate.ramp) {
    rate["ramp"] = {{"start_per_minute", d.rate.ramp->start_per_minute},
                    {"factor", d.rate.ramp->factor},
                    {"every_successes", d.rate.ramp->every_successes}};
  }
  json conditions = json::array();
  for (const auto& c : d.conditions) {
    conditions.push_back({{"group", c.group},
                          {"stage", "entry"},
                          {"property", c.property},
                          {"op", to_string(c.op)},
                          {"value", c.value},
                          {"ignorable", c.ignorable}});
  }
  json out = {
      {"name", d.name},
      {"type", to_string(d.type)},
      {"package_id", d.package_id ? json(*d.package_id) : json(nullptr)},
      {"command", d.command ? json(*d.command) : json(nullptr)},
      {"arguments", d.arguments},
      {"execution", to_string(d.execution)},
      {"groups", groups},
      {"rate", rate},
      {"batch_size", d.batch_size},
      {"success",
       {{"threshold_percent", d.success.threshold_percent}, {"verify_version", d.success.verify_version}}},
      {"reply_timeout_s", d.reply_timeout_s},
      {"retries", {{"max", d.retries.max}, {"backoff_s", d.retries.backoff_s}}},
      {"between_groups", {{"pause_minutes", d.between_groups_pause_minutes}}},
      {"conditions", conditions}};
  out["abort"] = d.abort ? json{{"failure_percent", d.abort->failure_percent},
                                {"min_finished", d.abort->min_finished},
                                {"action", to_string(d.abort->action)}}
                         : json(nullptr);
  if (d.window) {
    out["window"] = {
        {"not_before", d.window->not_before ? json(format_time(*d.window->not_before)) : json(nullptr)},
        {"not_after", d.window->not_after ? json(format_time(*d.window->not_after)) : json(nullptr)}};
  } else {
    out["window"] = nullptr;
  }
  return out;
}

}  // namespace dispatch::campaigns
