#include "service/mqtt/mqtt_client.h"

#include <fmt/format.h>
#include <mqtt/async_client.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "service/mqtt/paho_message.h"
#include "service/mqtt/paho_options.h"
#include "service/mqtt/tcp_nodelay.h"

namespace dispatch::service {

using core::ErrorCode;
using core::make_error;

class MqttClient::Listener : public mqtt::iaction_listener {
 public:
  explicit Listener(MqttClient& c) : c_(c) {}
  void on_success(const mqtt::token&) override { done(); }
  void on_failure(const mqtt::token&) override { done(); }

 private:
  void done() {
    std::lock_guard lk(c_.mu_);
    --c_.inflight_;
    c_.cv_.notify_all();
  }
  MqttClient& c_;
};

namespace {
std::string random_suffix() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}
}  // namespace

MqttClient::MqttClient(ClientOptions opts) : opts_(std::move(opts)) {
  if (opts_.client_id.empty()) opts_.client_id = "dispatch-client-" + random_suffix();
  reply_topic_ = "dispatch/reply/" + opts_.client_id;
  auto copts = mqtt::create_options_builder()
                   .mqtt_version(opts_.mqtt_version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1)
                   .max_buffered_messages(100000)
                   .finalize();
  client_ = std::make_unique<mqtt::async_client>(opts_.uri, opts_.client_id, copts, nullptr);
  listener_ = std::make_unique<Listener>(*this);
  client_->set_message_callback([this](mqtt::const_message_ptr m) {
    try {
      on_message(to_inbound(*m));
    } catch (...) {
    }
  });
  client_->set_connected_handler([](const std::string&) { force_tcp_nodelay_all(); });
}

MqttClient::~MqttClient() {
  try {
    disconnect();
  } catch (...) {
  }
  // Paho's threads may call into the listener and the queues until the client is gone: destroy it while
  // they still exist (members would go in reverse order, after them).
  client_.reset();
}

core::Status MqttClient::connect(int timeout_ms) {
  try {
    auto b = mqtt::connect_options_builder();
    apply_connect_options(b, opts_, std::chrono::seconds(5));
    auto tok = client_->connect(b.finalize());
    if (!tok->wait_for(std::chrono::milliseconds(timeout_ms)) || !client_->is_connected()) {
      return make_error(
          ErrorCode::unavailable,
          fmt::format("cannot connect to the broker at {} (no answer within {} ms)", opts_.uri, timeout_ms));
    }
    force_tcp_nodelay_all();
    return {};
  } catch (const mqtt::exception& e) {
    return make_error(ErrorCode::unavailable, fmt::format("cannot connect to the broker at {}: {}{}",
                                                          opts_.uri, e.what(), tls_failure_hint(opts_)));
  }
}

void MqttClient::disconnect() {
  if (client_ && client_->is_connected()) {
    try {
      client_->disconnect()->wait_for(std::chrono::seconds(2));
    } catch (...) {
    }
  }
}

bool MqttClient::connected() const { return client_ && client_->is_connected(); }

core::Status MqttClient::subscribe(const std::string& filter, int qos, int timeout_ms) {
  try {
    auto tok = client_->subscribe(filter, qos);
    if (!tok->wait_for(std::chrono::milliseconds(timeout_ms))) {
      return make_error(ErrorCode::unavailable, "subscribe timed out: " + filter);
    }
    return {};
  } catch (const mqtt::exception& e) {
    return make_error(ErrorCode::unavailable, fmt::format("subscribe {} failed: {}", filter, e.what()));
  }
}

core::Status MqttClient::publish(const std::string& topic, const std::string& payload, int qos, bool retain,
                                 const std::string& response_topic,
                                 const std::optional<std::string>& correlation, bool wait) {
  try {
    auto msg = mqtt::message_ptr_builder().topic(topic).payload(payload).qos(qos).retained(retain).finalize();
    if (opts_.mqtt_version == 5) {
      mqtt::properties props;
      if (!response_topic.empty()) props.add({mqtt::property::RESPONSE_TOPIC, response_topic});
      if (correlation) props.add({mqtt::property::CORRELATION_DATA, *correlation});
      msg->set_properties(std::move(props));
    }
    {
      std::unique_lock lk(mu_);
      if (!cv_.wait_for(lk, std::chrono::seconds(30), [&] { return inflight_ < opts_.max_inflight; })) {
        return make_error(ErrorCode::unavailable, "publish window did not drain within 30 s");
      }
      ++inflight_;
    }
    auto tok = client_->publish(msg, nullptr, *listener_);
    if (wait && !tok->wait_for(std::chrono::seconds(30))) {
      return make_error(ErrorCode::unavailable, "publish not acknowledged within 30 s");
    }
    return {};
  } catch (const mqtt::exception& e) {
    std::lock_guard lk(mu_);
    --inflight_;
    cv_.notify_all();
    return make_error(ErrorCode::unavailable, fmt::format("publish to {} failed: {}", topic, e.what()));
  }
}

bool MqttClient::flush(int timeout_ms) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return inflight_ == 0; });
}

void MqttClient::on_message(InboundMessage&& m) {
  std::unique_lock lk(mu_);
  if (m.topic == reply_topic_) {
    std::string corr = m.has_correlation_data ? m.correlation_data : std::string();
    if (corr.empty()) {
      auto j = nlohmann::json::parse(m.payload, nullptr, false);
      if (j.is_object() && j.contains("correlation_id") && j["correlation_id"].is_string()) {
        corr = j["correlation_id"].get<std::string>();
      }
    }
    auto it = waiting_.find(corr);
    if (it != waiting_.end()) {
      it->second = std::move(m.payload);
      cv_.notify_all();
    }
    return;
  }
  if (handler_) {
    auto h = handler_;
    lk.unlock();
    h(std::move(m));
    return;
  }
  inbox_.push_back(std::move(m));
  cv_.notify_all();
}

std::optional<InboundMessage> MqttClient::next(int timeout_ms) {
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return !inbox_.empty(); }))
    return std::nullopt;
  auto m = std::move(inbox_.front());
  inbox_.pop_front();
  return m;
}

void MqttClient::set_handler(std::function<void(InboundMessage&&)> handler) {
  std::lock_guard lk(mu_);
  handler_ = std::move(handler);
}

core::Result<std::string> MqttClient::request(const std::string& topic, const std::string& payload_json,
                                              int timeout_ms) {
  if (!reply_subscribed_) {
    if (auto st = subscribe(reply_topic_, 1); !st) return st.error();
    reply_subscribed_ = true;
  }
  std::string corr = fmt::format("{}-{}", opts_.client_id, next_corr_.fetch_add(1));
  std::string body = payload_json;
  if (opts_.mqtt_version != 5) {
    auto j = nlohmann::json::parse(payload_json, nullptr, false);
    if (j.is_object()) {
      j["reply_to"] = reply_topic_;
      j["correlation_id"] = corr;
      body = j.dump();
    }
  }
  {
    std::lock_guard lk(mu_);
    waiting_[corr] = std::nullopt;
  }
  auto st =
      opts_.mqtt_version == 5 ? publish(topic, body, 1, false, reply_topic_, corr) : publish(topic, body, 1);
  if (!st) {
    std::lock_guard lk(mu_);
    waiting_.erase(corr);
    return st.error();
  }
  std::unique_lock lk(mu_);
  bool got =
      cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return waiting_[corr].has_value(); });
  auto answer = std::move(waiting_[corr]);
  waiting_.erase(corr);
  if (!got || !answer) {
    return make_error(ErrorCode::unavailable,
                      fmt::format("no answer from dispatchd within {} ms on {} (is the service running?)",
                                  timeout_ms, topic));
  }
  return std::move(*answer);
}

}  // namespace dispatch::service
