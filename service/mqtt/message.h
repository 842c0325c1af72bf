// The values that cross between the MQTT library (service/mqtt, the only code that knows Paho) and its
// users, and the sink MqttLink delivers them to. Nothing here includes Paho: the service, the tools and the
// tests use these types without Paho's headers.
#pragma once

#include <cstdint>
#include <string>

namespace dispatch::service {

// A message received from the broker.
struct InboundMessage {
  std::string topic;
  std::string payload;
  std::string response_topic;    // MQTT 5 Response Topic, empty when absent
  std::string correlation_data;  // MQTT 5 Correlation Data, empty when absent
  bool has_correlation_data = false;
};

// A message to publish.
struct OutMessage {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retain = false;
  std::int64_t expiry_s = 0;  // MQTT 5 Message Expiry Interval; 0 = none
  // Unix time, ms, after which the message is no longer handed to the broker; 0 = none. A message still in
  // the link's queue at its deadline (the loop was busy or the link down) is not published: the link reports
  // it as given up (PublishDone ok = false). With it the MQTT 5 expiry is what remains of it at the hand-off
  // (expiry_s is then ignored). The outbox sets it to the item's expiry: a campaign attempt is retried with a
  // new id only once its reply timeout passed, so its old line must not reach the device after that.
  std::int64_t not_after_ms = 0;
  std::string correlation_data;
  bool has_correlation_data = false;
  std::string response_topic;
  std::uint64_t tag = 0;  // echoed in PublishDone when non-zero
};

// The broker acknowledged (ok) or the link gave up on (!ok) the publish tagged `tag`: its deadline passed
// while it waited in the link's queue, or the message itself was refused (`refused`: by the client library,
// e.g. larger than the broker's Maximum Packet Size, or by the broker, a PUBACK reason code of 0x80 or more),
// so that publishing it again would fail again.
struct PublishDone {
  std::uint64_t tag = 0;
  bool ok = false;
  bool refused = false;
};

struct LinkUp {};
struct LinkDown {
  std::string cause;
};

// Where MqttLink hands what happens on the connection. Called on Paho's threads: an implementation
// must be thread-safe and must not call back into the link. on_message may block (back-pressure on the
// broker); the others must not, they free capacity in Paho. Exceptions from on_message are caught and
// logged by the link (the message is dropped); the others must not throw.
class LinkEvents {
 public:
  virtual ~LinkEvents() = default;
  virtual void on_message(InboundMessage m) = 0;
  virtual void on_publish_done(PublishDone d) = 0;
  virtual void on_link_up() = 0;
  virtual void on_link_down(std::string cause) = 0;
};

}  // namespace dispatch::service
