#include "protocol/topics.h"

#include <fmt/format.h>

#include <array>
#include <utility>

#include "protocol/ids.h"

namespace dispatch::protocol {

namespace {

using core::ErrorCode;
using core::make_error;

constexpr std::array<std::pair<TopicKind, std::string_view>, 13> k_kind_names{{
    {TopicKind::command_reply, "command_reply"},
    {TopicKind::command_pending, "command_pending"},
    {TopicKind::provisioning_request, "provisioning_request"},
    {TopicKind::provisioning_download, "provisioning_download"},
    {TopicKind::metadata, "metadata"},
    {TopicKind::ping, "ping"},
    {TopicKind::command_request, "command_request"},
    {TopicKind::command_pending_reply, "command_pending_reply"},
    {TopicKind::provisioning_reply, "provisioning_reply"},
    {TopicKind::provisioning_data, "provisioning_data"},
    {TopicKind::api, "api"},
    {TopicKind::command_event, "command_event"},
    {TopicKind::campaign_event, "campaign_event"},
}};

// Device kinds in the order parse tries them; inbound first because those are the hot path.
constexpr std::array<TopicKind, 10> k_device_kinds{
    TopicKind::command_reply,
    TopicKind::command_pending,
    TopicKind::provisioning_request,
    TopicKind::provisioning_download,
    TopicKind::metadata,
    TopicKind::ping,
    TopicKind::command_request,
    TopicKind::command_pending_reply,
    TopicKind::provisioning_reply,
    TopicKind::provisioning_data,
};

constexpr std::string_view k_commands_level = "commands";
constexpr std::string_view k_campaigns_level = "campaigns";

bool has_forbidden_char(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '+' || c == '#' || u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

bool valid_api_level(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

// The text after "<root>/" when topic starts with it.
std::optional<std::string_view> below(std::string_view topic, std::string_view root) {
  if (topic.size() <= root.size() || topic.substr(0, root.size()) != root || topic[root.size()] != '/') {
    return std::nullopt;
  }
  return topic.substr(root.size() + 1);
}

}  // namespace

std::string_view to_string(TopicKind kind) {
  for (const auto& [k, name] : k_kind_names) {
    if (k == kind) return name;
  }
  return "unknown";
}

bool is_device_topic(TopicKind kind) {
  for (auto k : k_device_kinds) {
    if (k == kind) return true;
  }
  return false;
}

bool is_device_inbound(TopicKind kind) {
  switch (kind) {
    case TopicKind::command_reply:
    case TopicKind::command_pending:
    case TopicKind::provisioning_request:
    case TopicKind::provisioning_download:
    case TopicKind::metadata:
    case TopicKind::ping:
      return true;
    default:
      return false;
  }
}

core::Status validate(const TopicRoots& roots) {
  const std::array<std::pair<std::string_view, const std::string*>, 12> named{{
      {"command_request", &roots.command_request},
      {"command_reply", &roots.command_reply},
      {"command_pending", &roots.command_pending},
      {"command_pending_reply", &roots.command_pending_reply},
      {"provisioning_request", &roots.provisioning_request},
      {"provisioning_reply", &roots.provisioning_reply},
      {"provisioning_download", &roots.provisioning_download},
      {"provisioning_data", &roots.provisioning_data},
      {"metadata", &roots.metadata},
      {"ping", &roots.ping},
      {"api", &roots.api},
      {"events", &roots.events},
  }};
  for (std::size_t i = 0; i < named.size(); ++i) {
    const auto& [name, value] = named[i];
    const std::string_view root = *value;
    if (root.empty())
      return make_error(ErrorCode::bad_request, fmt::format("topic root '{}' is empty", name));
    if (root.front() == '$' || has_forbidden_char(root)) {
      return make_error(ErrorCode::bad_request,
                        fmt::format("topic root '{}' must not start with '$' or hold '+', '#' or control "
                                    "characters",
                                    name));
    }
    if (root.front() == '/' || root.back() == '/' || root.find("//") != std::string_view::npos) {
      return make_error(ErrorCode::bad_request, fmt::format("topic root '{}' has an empty level", name));
    }
    for (std::size_t j = 0; j < i; ++j) {
      const std::string_view other = *named[j].second;
      if (other == root) {
        return make_error(ErrorCode::bad_request,
                          fmt::format("topic root '{}' equals topic root '{}'", name, named[j].first));
      }
      // One root a level-prefix of another ("a/b" and "a/b/c") would let a topic of one parse as a topic
      // of the other: a device could publish on what the service reads as an API request.
      const bool root_below =
          root.size() > other.size() && root.substr(0, other.size()) == other && root[other.size()] == '/';
      const bool other_below =
          other.size() > root.size() && other.substr(0, root.size()) == root && other[root.size()] == '/';
      if (root_below || other_below) {
        return make_error(ErrorCode::bad_request,
                          fmt::format("topic root '{}' overlaps topic root '{}'", name, named[j].first));
      }
    }
  }
  return {};
}

Topics::Topics(TopicRoots roots) : roots_(std::move(roots)) {}

const std::string& Topics::root(TopicKind kind) const {
  switch (kind) {
    case TopicKind::command_reply:
      return roots_.command_reply;
    case TopicKind::command_pending:
      return roots_.command_pending;
    case TopicKind::provisioning_request:
      return roots_.provisioning_request;
    case TopicKind::provisioning_download:
      return roots_.provisioning_download;
    case TopicKind::metadata:
      return roots_.metadata;
    case TopicKind::ping:
      return roots_.ping;
    case TopicKind::command_request:
      return roots_.command_request;
    case TopicKind::command_pending_reply:
      return roots_.command_pending_reply;
    case TopicKind::provisioning_reply:
      return roots_.provisioning_reply;
    case TopicKind::provisioning_data:
      return roots_.provisioning_data;
    case TopicKind::api:
      return roots_.api;
    case TopicKind::command_event:
    case TopicKind::campaign_event:
      return roots_.events;
  }
  return roots_.events;
}

core::Result<std::string> Topics::device(TopicKind kind, std::string_view hw) const {
  if (!is_device_topic(kind)) {
    return make_error(ErrorCode::bad_request, fmt::format("'{}' is not a device topic", to_string(kind)));
  }
  if (auto s = check_hardware_id(hw); !s) return s.error();
  return fmt::format("{}/{}", root(kind), hw);
}

core::Result<std::string> Topics::command_request(std::string_view hw) const {
  return device(TopicKind::command_request, hw);
}
core::Result<std::string> Topics::command_reply(std::string_view hw) const {
  return device(TopicKind::command_reply, hw);
}
core::Result<std::string> Topics::command_pending(std::string_view hw) const {
  return device(TopicKind::command_pending, hw);
}
core::Result<std::string> Topics::command_pending_reply(std::string_view hw) const {
  return device(TopicKind::command_pending_reply, hw);
}
core::Result<std::string> Topics::provisioning_request(std::string_view hw) const {
  return device(TopicKind::provisioning_request, hw);
}
core::Result<std::string> Topics::provisioning_reply(std::string_view hw) const {
  return device(TopicKind::provisioning_reply, hw);
}
core::Result<std::string> Topics::provisioning_download(std::string_view hw) const {
  return device(TopicKind::provisioning_download, hw);
}
core::Result<std::string> Topics::provisioning_data(std::string_view hw) const {
  return device(TopicKind::provisioning_data, hw);
}
core::Result<std::string> Topics::metadata(std::string_view hw) const {
  return device(TopicKind::metadata, hw);
}
core::Result<std::string> Topics::ping(std::string_view hw) const { return device(TopicKind::ping, hw); }

std::string Topics::api(std::string_view resource, std::string_view action) const {
  return fmt::format("{}/{}/{}", roots_.api, resource, action);
}

std::string Topics::command_event(std::string_view command_id) const {
  return fmt::format("{}/{}/{}", roots_.events, k_commands_level, command_id);
}

std::string Topics::campaign_event(std::string_view campaign_id) const {
  return fmt::format("{}/{}/{}", roots_.events, k_campaigns_level, campaign_id);
}

std::vector<std::string> Topics::subscriptions() const {
  std::vector<std::string> out;
  for (auto kind : k_device_kinds) {
    if (is_device_inbound(kind)) out.push_back(root(kind) + "/+");
  }
  out.push_back(roots_.api + "/+/+");
  return out;
}

std::optional<ParsedTopic> Topics::parse(std::string_view topic) const {
  // Roots may nest (one root a prefix of another), so a root only claims a topic when the rest has the
  // number of levels its kind expects.
  for (auto kind : k_device_kinds) {
    auto rest = below(topic, root(kind));
    if (!rest || rest->find('/') != std::string_view::npos) continue;
    ParsedTopic parsed;
    parsed.kind = kind;
    parsed.valid = valid_hardware_id(*rest);
    parsed.hardware_id = parsed.valid ? std::string(*rest) : printable(*rest);
    return parsed;
  }
  if (auto rest = below(topic, roots_.api)) {
    const auto slash = rest->find('/');
    if (slash != std::string_view::npos) {
      const auto resource = rest->substr(0, slash);
      const auto action = rest->substr(slash + 1);
      if (valid_api_level(resource) && valid_api_level(action)) {
        ParsedTopic parsed;
        parsed.kind = TopicKind::api;
        parsed.resource = std::string(resource);
        parsed.action = std::string(action);
        return parsed;
      }
    }
  }
  if (auto rest = below(topic, roots_.events)) {
    const auto slash = rest->find('/');
    if (slash != std::string_view::npos) {
      const auto family = rest->substr(0, slash);
      const auto id = rest->substr(slash + 1);
      if (valid_object_id(id) && (family == k_commands_level || family == k_campaigns_level)) {
        ParsedTopic parsed;
        parsed.kind = family == k_commands_level ? TopicKind::command_event : TopicKind::campaign_event;
        parsed.object_id = std::string(id);
        return parsed;
      }
    }
  }
  return std::nullopt;
}

bool Topics::response_topic_allowed(std::string_view response_topic, TopicKind reply_kind,
                                    std::string_view hw) const {
  if (!is_device_topic(reply_kind) || !valid_hardware_id(hw)) return false;
  if (has_forbidden_char(response_topic)) return false;
  const std::string base = fmt::format("{}/{}", root(reply_kind), hw);
  if (response_topic == base) return true;
  auto rest = below(response_topic, base);
  if (!rest) return false;
  // Below the device's own topic: every further level must be non-empty.
  if (rest->empty() || rest->front() == '/' || rest->back() == '/' ||
      rest->find("//") != std::string_view::npos) {
    return false;
  }
  return true;
}

bool Topics::in_reserved_namespace(std::string_view topic) const {
  for (const std::string* r :
       {&roots_.command_request, &roots_.command_reply, &roots_.command_pending,
        &roots_.command_pending_reply, &roots_.provisioning_request, &roots_.provisioning_reply,
        &roots_.provisioning_download, &roots_.provisioning_data, &roots_.metadata, &roots_.ping, &roots_.api,
        &roots_.events}) {
    if (topic == *r) return true;
    if (topic.size() > r->size() && topic.compare(0, r->size(), *r) == 0 && topic[r->size()] == '/')
      return true;
  }
  return false;
}

std::string Topics::device_filter(TopicKind kind) const { return root(kind) + "/+"; }

std::string Topics::command_event_filter() const { return command_event("+"); }

}  // namespace dispatch::protocol
