#include "service/provisioning/device_replies.h"

namespace dispatch::service::provisioning {

void DeviceReplies::send(const std::string& hw, protocol::TopicKind kind, const InboundMessage& request,
                         std::string payload) {
  OutMessage out;
  if (!request.response_topic.empty() && topics_.response_topic_allowed(request.response_topic, kind, hw)) {
    out.topic = request.response_topic;
  } else {
    auto t = topics_.device(kind, hw);
    out.topic = t ? *t : std::string();  // hw was validated by the router, so this is never empty
  }
  out.payload = std::move(payload);
  out.qos = 1;
  if (request.has_correlation_data) {
    out.correlation_data = request.correlation_data;
    out.has_correlation_data = true;
  }
  publisher_.publish(std::move(out));
}

}  // namespace dispatch::service::provisioning
