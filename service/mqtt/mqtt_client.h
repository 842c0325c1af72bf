// MqttClient: a small blocking MQTT client for the tools (dispatchctl, dispatch-sim), benchmarks and
// integration tests — everything that talks to dispatchd from outside, as an independent client would.
//
// request() implements the platform API call of PROTOCOL §3: with MQTT 5 it sets Response Topic and
// Correlation Data; with MQTT 3.1.1 it adds `reply_to` and `correlation_id` to the JSON payload.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "protocol/core/result.h"
#include "service/mqtt/message.h"

namespace mqtt {
class async_client;
}

namespace dispatch::service {

struct ClientOptions {
  std::string uri = "tcp://127.0.0.1:1883";
  std::string client_id;  // empty: a random one
  int mqtt_version = 5;   // 5 or 4 (3.1.1)
  std::string username, password, ca_file, cert_file, key_file;
  bool tls_verify_hostname = true;  // the broker's certificate must name the host of uri
  int keepalive_s = 30;
  int max_inflight = 16;  // un-acked QoS 1 publishes before publish() blocks
  bool clean_start = true;
  int session_expiry_s = 0;
};

class MqttClient {
 public:
  explicit MqttClient(ClientOptions opts);
  ~MqttClient();
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  core::Status connect(int timeout_ms = 5000);
  void disconnect();
  bool connected() const;
  const std::string& client_id() const { return opts_.client_id; }
  int mqtt_version() const { return opts_.mqtt_version; }

  core::Status subscribe(const std::string& filter, int qos = 1, int timeout_ms = 5000);

  // Publishes; blocks while max_inflight QoS>0 publishes are un-acked. With wait, returns after the ack.
  core::Status publish(const std::string& topic, const std::string& payload, int qos = 1, bool retain = false,
                       const std::string& response_topic = {},
                       const std::optional<std::string>& correlation = {}, bool wait = false);
  // Waits until every publish so far is acknowledged.
  bool flush(int timeout_ms);

  // Messages of subscriptions (other than request replies), oldest first.
  std::optional<InboundMessage> next(int timeout_ms);
  // Replaces the queue: every message is handed to `handler` on Paho's thread (fast paths, e.g. the
  // simulator).
  void set_handler(std::function<void(InboundMessage&&)> handler);

  // One platform API call: publishes `payload_json` (an object) to `topic` and waits for the answer.
  core::Result<std::string> request(const std::string& topic, const std::string& payload_json,
                                    int timeout_ms = 10000);

 private:
  void on_message(InboundMessage&& m);

  ClientOptions opts_;
  std::unique_ptr<mqtt::async_client> client_;
  std::string reply_topic_;
  bool reply_subscribed_ = false;
  std::atomic<std::uint64_t> next_corr_{1};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<InboundMessage> inbox_;
  std::map<std::string, std::optional<std::string>> waiting_;  // correlation → answer
  std::function<void(InboundMessage&&)> handler_;
  int inflight_ = 0;
  class Listener;
  std::unique_ptr<Listener> listener_;
};

}  // namespace dispatch::service
