// Fuzzes protocol::Topics::parse (every received topic) and response_topic_allowed (MQTT 5 Response
// Topics chosen by devices). Input: <selector byte><topic>\0<hardware id>.
// Invariants: a valid parsed device topic is exactly what the builder makes for its kind and id; an
// allowed response topic lies at or below the reply root of that device and holds no wildcard.
#include <array>

#include "protocol/ids.h"
#include "protocol/topics.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  using protocol::TopicKind;
  static const protocol::Topics topics;
  static constexpr std::array<TopicKind, 13> k_kinds = {TopicKind::command_reply,
                                                        TopicKind::command_pending,
                                                        TopicKind::provisioning_request,
                                                        TopicKind::provisioning_download,
                                                        TopicKind::metadata,
                                                        TopicKind::ping,
                                                        TopicKind::command_request,
                                                        TopicKind::command_pending_reply,
                                                        TopicKind::provisioning_reply,
                                                        TopicKind::provisioning_data,
                                                        TopicKind::api,
                                                        TopicKind::command_event,
                                                        TopicKind::campaign_event};
  if (size == 0) return 0;
  auto kind = k_kinds[data[0] % k_kinds.size()];
  auto fields = fuzz::split_fields(fuzz::as_text(data + 1, size - 1), 2);
  auto topic = fields[0];
  auto hw = fields[1];

  if (auto parsed = topics.parse(topic)) {
    if (protocol::is_device_topic(parsed->kind) && parsed->valid) {
      fuzz::check(protocol::valid_hardware_id(parsed->hardware_id), "parsed hardware id is valid");
      auto built = topics.device(parsed->kind, parsed->hardware_id);
      fuzz::check(built.ok() && *built == topic, "a parsed device topic is what the builder makes");
    }
    if (parsed->kind == TopicKind::api) {
      fuzz::check(topics.api(parsed->resource, parsed->action) == topic, "a parsed api topic round-trips");
    }
  }

  if (topics.response_topic_allowed(topic, kind, hw)) {
    fuzz::check(protocol::is_device_topic(kind), "only device kinds allow response topics");
    auto base = topics.device(kind, hw);
    fuzz::check(base.ok(), "the device is valid");
    fuzz::check(topic == *base || (topic.size() > base->size() + 1 &&
                                   topic.substr(0, base->size()) == *base && topic[base->size()] == '/'),
                "an allowed response topic is the reply topic or below it");
    fuzz::check(topic.find_first_of(std::string_view("+#\0", 3)) == std::string_view::npos,
                "an allowed response topic holds no wildcard or NUL");
  }
  return 0;
}
