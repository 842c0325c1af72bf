// MqttLink: the service's one MQTT connection, and the only place dispatchd touches Paho.
//
// - MQTT 5, clean_start(false) with a session expiry so subscriptions survive reconnects; automatic
//   reconnect, and every (re)connect re-subscribes (cheap, and covers a broker that lost the session).
// - TCP_NODELAY is forced on the client socket after every connect (stack.md P4).
// - Publishes are windowed: at most `max_inflight` un-acknowledged QoS 1 publishes are handed to Paho
//   (stack.md P3); the rest wait in the link's own queue. The owner checks `backlog()` and stops feeding
//   the link while it is disconnected or full.
// - Paho callbacks only hand values to LinkEvents (the service's EventQueue); no exception crosses a
//   callback.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "protocol/core/result.h"
#include "service/mqtt/message.h"

namespace mqtt {
class async_client;
}

namespace dispatch::service {

struct LinkOptions {
  std::string uri;
  std::string client_id;
  std::string username;
  std::string password;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool tls_verify_hostname = true;  // the broker's certificate must name the host of uri
  int keepalive_s = 30;
  int session_expiry_s = 3600;
  int max_inflight = 16;
  int max_buffered = 10000;
  bool clean_start = false;
  int mqtt_version = 5;  // 5 or 4 (3.1.1)
};

class MqttLink {
 public:
  MqttLink(LinkOptions options, LinkEvents& events);
  ~MqttLink();
  MqttLink(const MqttLink&) = delete;
  MqttLink& operator=(const MqttLink&) = delete;

  // Subscribes to these filters (QoS 1) on every connect, after unsubscribing from `stale` ones: the
  // session is persistent (clean start false), so a filter subscribed by an earlier run under the same
  // client id (e.g. the plain form of a filter now subscribed as $share/<group>/…) would otherwise keep
  // delivering to this instance.
  void set_subscriptions(std::vector<std::string> filters, std::vector<std::string> stale = {});
  // Connects, waiting up to timeout_ms for the first CONNACK; later drops are reconnected by Paho.
  core::Status connect(int timeout_ms);
  void disconnect(int timeout_ms);
  bool connected() const { return connected_.load(); }

  // Queues a message; it is handed to Paho by pump() within the in-flight window.
  void publish(OutMessage m);
  // Hands queued messages to Paho while the window allows. Call from the owner's loop.
  void pump();
  // Messages queued in the link or in flight to the broker.
  size_t backlog() const;
  std::uint64_t published_total() const { return published_total_.load(); }
  // QoS 1 publishes handed to Paho and not yet acknowledged (at most max_inflight).
  int inflight() const { return inflight_.load(); }
  int max_inflight() const { return opts_.max_inflight; }
  // The broker's Maximum Packet Size from the MQTT 5 CONNACK, bytes; 0 when it announced none (or 3.1.1).
  std::size_t max_packet_bytes() const { return max_packet_bytes_.load(); }

  // Called by the owner on LinkUp: re-subscribes and re-applies TCP_NODELAY.
  void on_connected();

 private:
  class Callbacks;
  void on_publish_done(std::uint64_t tag, bool ok);

  LinkOptions opts_;
  LinkEvents& events_;
  std::unique_ptr<mqtt::async_client> client_;
  std::unique_ptr<Callbacks> callbacks_;
  std::vector<std::string> subscriptions_;
  std::vector<std::string> stale_subscriptions_;
  std::atomic<bool> connected_{false};
  std::atomic<int> inflight_{0};
  std::atomic<std::uint64_t> published_total_{0};
  std::atomic<std::size_t> max_packet_bytes_{0};
  std::deque<OutMessage> queue_;  // owned by the loop thread
};

}  // namespace dispatch::service
