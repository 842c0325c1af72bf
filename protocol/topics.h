// Every topic string of the wire (PROTOCOL §1, §3): built and parsed here and nowhere else.
//
// Device topics are <root>/<hardware id>; the platform API is <api root>/<resource>/<action>; events are
// <events root>/commands/<command id> and <events root>/campaigns/<campaign id>. Builders refuse an id that
// would change the topic's shape; parse refuses extra, empty or wildcard levels.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/result.h"

namespace dispatch::protocol {

// Configurable roots; the defaults are esthesis CORE's device-facing topics.
struct TopicRoots {
  std::string command_request = "esthesis/command/request";
  std::string command_reply = "esthesis/command/reply";
  std::string command_pending = "esthesis/command/pending";
  std::string command_pending_reply = "esthesis/command/pending-reply";
  std::string provisioning_request = "esthesis/provisioning/request";
  std::string provisioning_reply = "esthesis/provisioning/reply";
  std::string provisioning_download = "esthesis/provisioning/download";
  std::string provisioning_data = "esthesis/provisioning/data";
  std::string metadata = "esthesis/metadata";
  std::string ping = "esthesis/ping";
  std::string api = "esthesis/api/v1";
  std::string events = "esthesis/events/v1";
};

// ok when every root is non-empty, has no empty level, no leading '$', no '+', '#' or NUL, and no two
// roots are equal or overlap (one a level-prefix of another: "a/b" and "a/b/c"); otherwise bad_request
// "topic root '<name>' …" naming the offending setting first.
core::Status validate(const TopicRoots& roots);

enum class TopicKind {
  // device → service: <root>/{hw}
  command_reply,
  command_pending,
  provisioning_request,
  provisioning_download,
  metadata,
  ping,
  // service → device: <root>/{hw}
  command_request,
  command_pending_reply,
  provisioning_reply,
  provisioning_data,
  // platform
  api,             // <api>/<resource>/<action>
  command_event,   // <events>/commands/<command id>
  campaign_event,  // <events>/campaigns/<campaign id>
};

// "command_reply", "provisioning_request", … (for logs and metrics).
std::string_view to_string(TopicKind kind);
// True for the kinds whose last level is a hardware id.
bool is_device_topic(TopicKind kind);
// True for the device topics the service subscribes to (device → service).
bool is_device_inbound(TopicKind kind);

struct ParsedTopic {
  TopicKind kind = TopicKind::ping;
  // Device kinds: the hardware id. When !valid it is printable() of the offending level: for logs only.
  std::string hardware_id;
  // api only.
  std::string resource;
  std::string action;
  // command_event / campaign_event only.
  std::string object_id;
  // False only for a device topic whose id level is not a valid hardware id (empty, bad characters,
  // too long): the kind is known so the service can count and drop it.
  bool valid = true;
};

class Topics {
 public:
  // The roots are used as given; check them with validate() first (the service does at start).
  explicit Topics(TopicRoots roots = {});

  const TopicRoots& roots() const { return roots_; }
  // The configured root of a kind (api: the api root; event kinds: the events root).
  const std::string& root(TopicKind kind) const;

  // <root>/{hw}. bad_request (check_hardware_id's message) when hw is not a valid hardware id.
  core::Result<std::string> command_request(std::string_view hw) const;
  core::Result<std::string> command_reply(std::string_view hw) const;
  core::Result<std::string> command_pending(std::string_view hw) const;
  core::Result<std::string> command_pending_reply(std::string_view hw) const;
  core::Result<std::string> provisioning_request(std::string_view hw) const;
  core::Result<std::string> provisioning_reply(std::string_view hw) const;
  core::Result<std::string> provisioning_download(std::string_view hw) const;
  core::Result<std::string> provisioning_data(std::string_view hw) const;
  core::Result<std::string> metadata(std::string_view hw) const;
  core::Result<std::string> ping(std::string_view hw) const;
  // Any device kind; bad_request also when kind is not a device kind.
  core::Result<std::string> device(TopicKind kind, std::string_view hw) const;

  // <api>/<resource>/<action>. Precondition: resource and action are our own constants (no '/', '+',
  // '#'); they are not checked.
  std::string api(std::string_view resource, std::string_view action) const;
  // <events>/commands/<id> and <events>/campaigns/<id>. Precondition: the id is service-minted and
  // satisfies valid_object_id; it is not checked again.
  std::string command_event(std::string_view command_id) const;
  std::string campaign_event(std::string_view campaign_id) const;

  // True when topic is one of the roots or lies below one (device, api or events topics). An API answer
  // must never go there: it would reach a device as a command, feed the service its own answer as a
  // request, or forge an event.
  bool in_reserved_namespace(std::string_view topic) const;

  // Subscription filters for clients: <root(kind)>/+ (every device of a device kind) and
  // <events>/commands/+ (every command event).
  std::string device_filter(TopicKind kind) const;
  std::string command_event_filter() const;

  // The filters the service subscribes to: each device → service root + "/+", and the api root + "/+/+".
  std::vector<std::string> subscriptions() const;

  // What a received topic is. nullopt when it matches no root with the right number of levels, or has
  // an empty, wildcard or otherwise malformed level (api resource/action must match [a-z0-9_-]{1,64};
  // event ids valid_object_id). A device topic with exactly one level after its root that is not a
  // valid hardware id gives {kind, valid=false}.
  std::optional<ParsedTopic> parse(std::string_view topic) const;

  // Whether an MQTT 5 Response Topic may be used for an answer of kind reply_kind to device hw: true only
  // if it equals <root(reply_kind)>/{hw} or lies below it (<root>/{hw}/…, no empty levels), hw is valid,
  // reply_kind is a device kind, and the topic holds no '+', '#', NUL or other control character.
  bool response_topic_allowed(std::string_view response_topic, TopicKind reply_kind,
                              std::string_view hw) const;

 private:
  TopicRoots roots_;
};

}  // namespace dispatch::protocol
