#include "service/mqtt/mqtt_link.h"

#include <fmt/format.h>
#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "service/mqtt/paho_message.h"
#include "service/mqtt/paho_options.h"
#include "service/mqtt/tcp_nodelay.h"

namespace dispatch::service {

// Runs on Paho's threads: hands everything to LinkEvents and never lets an exception escape.
class MqttLink::Callbacks : public mqtt::iaction_listener {
 public:
  explicit Callbacks(MqttLink& link) : link_(link) {}

  void on_success(const mqtt::token& tok) override {
    link_.on_publish_done(reinterpret_cast<std::uint64_t>(tok.get_user_context()), true);
  }
  void on_failure(const mqtt::token& tok) override {
    link_.on_publish_done(reinterpret_cast<std::uint64_t>(tok.get_user_context()), false);
  }

 private:
  MqttLink& link_;
};

namespace {
// Mosquitto's default max_inflight_messages: the window for MQTT 3.1.1 (no Receive Maximum), and until the
// first CONNACK has told the broker's.
constexpr int k_default_window = 20;
}  // namespace

int MqttLink::window_for(const LinkOptions& o, int receive_maximum) {
  int w = o.mqtt_version == 5 ? (receive_maximum > 0 ? receive_maximum : 65535) : k_default_window;
  if (o.max_inflight > 0) w = o.mqtt_version == 5 ? std::min(w, o.max_inflight) : o.max_inflight;
  return std::max(1, std::min(w, o.max_buffered));
}

MqttLink::MqttLink(LinkOptions options, LinkEvents& events) : opts_(std::move(options)), events_(events) {
  window_.store(window_for(opts_, k_default_window));
  auto copts = mqtt::create_options_builder()
                   .mqtt_version(opts_.mqtt_version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1)
                   .max_buffered_messages(opts_.max_buffered)
                   .finalize();
  client_ = std::make_unique<mqtt::async_client>(opts_.uri, opts_.client_id, copts, nullptr);
  callbacks_ = std::make_unique<Callbacks>(*this);
  // All callbacks are set before connect() (paho.mqtt.cpp #519).
  client_->set_message_callback([this](mqtt::const_message_ptr m) {
    try {
      events_.on_message(to_inbound(*m));
    } catch (const std::exception& e) {
      spdlog::error("dropping an inbound message that could not be read: {}", e.what());
    }
  });
  client_->set_connected_handler([this](const std::string&) {
    connected_.store(true);
    events_.on_link_up();
  });
  client_->set_connection_lost_handler([this](const std::string& cause) {
    connected_.store(false);
    events_.on_link_down(cause);
  });
}

MqttLink::~MqttLink() {
  try {
    if (client_ && client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(2));
  } catch (...) {
  }
  // Paho's threads may still call into callbacks_ until the client is gone: destroy it first (members
  // would go in reverse order, callbacks_ before client_).
  client_.reset();
}

void MqttLink::set_subscriptions(std::vector<std::string> filters, std::vector<std::string> stale) {
  subscriptions_ = std::move(filters);
  stale_subscriptions_ = std::move(stale);
}

core::Status MqttLink::connect(int timeout_ms) {
  try {
    auto b = mqtt::connect_options_builder();
    apply_connect_options(b, opts_, std::chrono::seconds(10));
    // Built in place and passed straight to connect(): copies lose properties (paho.mqtt.cpp #445).
    auto tok = client_->connect(b.finalize());
    if (!tok->wait_for(std::chrono::milliseconds(timeout_ms))) {
      return core::make_error(core::ErrorCode::unavailable,
                              fmt::format("no CONNACK from {} within {} ms", opts_.uri, timeout_ms));
    }
    connected_.store(client_->is_connected());
    // MQTT 5 CONNACK: the broker's Maximum Packet Size, when it sets one. A larger publish would make the
    // broker drop the connection, and Paho would resend it after every reconnect. Paho reconnects to the
    // same broker, so the first CONNACK's value stands until the next connect().
    // Its Receive Maximum sets the publish window (see mqtt_link.h), kept likewise.
    int receive_maximum = 0;
    if (opts_.mqtt_version == 5) {
      // get_connect_response() returns by value: keep it alive while its properties are read (a
      // reference into the temporary dangled, and the limit read as absent).
      const mqtt::connect_response response = tok->get_connect_response();
      const mqtt::properties& props = response.get_properties();
      if (props.contains(mqtt::property::MAXIMUM_PACKET_SIZE)) {
        max_packet_bytes_.store(
            static_cast<std::size_t>(mqtt::get<std::uint32_t>(props, mqtt::property::MAXIMUM_PACKET_SIZE)));
      }
      if (props.contains(mqtt::property::RECEIVE_MAXIMUM))
        receive_maximum = mqtt::get<std::uint16_t>(props, mqtt::property::RECEIVE_MAXIMUM);
      spdlog::info("the broker's maximum packet size: {}",
                   max_packet_bytes_.load() == 0 ? std::string("none announced")
                                                 : fmt::format("{} bytes", max_packet_bytes_.load()));
    }
    window_.store(window_for(opts_, receive_maximum));
    spdlog::info(
        "MQTT publish window {} (broker Receive Maximum {}, mqtt.max_inflight {})", window_.load(),
        receive_maximum > 0 ? std::to_string(receive_maximum) : std::string("not announced"),
        opts_.max_inflight > 0 ? std::to_string(opts_.max_inflight) : std::string("0 = the broker's"));
    return {};
  } catch (const mqtt::exception& e) {
    return core::make_error(core::ErrorCode::unavailable, fmt::format("cannot connect to {}: {}{}", opts_.uri,
                                                                      e.what(), tls_failure_hint(opts_)));
  }
}

void MqttLink::on_connected() {
  force_tcp_nodelay_all();
  for (const auto& f : stale_subscriptions_) {
    try {
      // Unsubscribing from a filter the session does not have is harmless (reason "no subscription").
      client_->unsubscribe(f);
    } catch (const mqtt::exception& e) {
      spdlog::warn("unsubscribe {} failed: {}", f, e.what());
    }
  }
  for (const auto& f : subscriptions_) {
    try {
      client_->subscribe(f, 1);
    } catch (const mqtt::exception& e) {
      spdlog::error("subscribe {} failed: {}", f, e.what());
    }
  }
}

void MqttLink::disconnect(int timeout_ms) {
  try {
    if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::milliseconds(timeout_ms));
  } catch (const mqtt::exception& e) {
    spdlog::warn("disconnect: {}", e.what());
  }
  connected_.store(false);
}

namespace {
std::int64_t steady_minute() {
  return std::chrono::duration_cast<std::chrono::minutes>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void MqttLink::publish(OutMessage m) {
  const std::size_t size = queued_size(m);
  queued_bytes_ += size;
  const std::int64_t minute = steady_minute();
  if (minute != largest_minute_) {
    largest_before_ = minute == largest_minute_ + 1 ? largest_now_ : 0;
    largest_now_ = 0;
    largest_minute_ = minute;
  }
  largest_now_ = std::max(largest_now_, size);
  queue_.push_back(std::move(m));
}

std::size_t MqttLink::recent_largest() const {
  const std::int64_t minute = steady_minute();
  if (minute == largest_minute_) return std::max(largest_now_, largest_before_);
  return minute == largest_minute_ + 1 ? largest_now_ : 0;
}

size_t MqttLink::backlog() const { return queue_.size() + static_cast<size_t>(inflight_.load()); }

void MqttLink::on_publish_done(std::uint64_t tag, bool ok) {
  inflight_.fetch_sub(1);
  published_total_.fetch_add(ok ? 1 : 0);
  events_.on_publish_done(PublishDone{tag, ok});
}

void MqttLink::pump() {
  const int window = window_.load();
  std::int64_t now_ms = 0;  // read once per pump, and only when a message has a deadline
  while (!queue_.empty() && connected_.load() && inflight_.load() < window) {
    OutMessage& m = queue_.front();
    std::int64_t expiry_s = m.expiry_s;
    if (m.not_after_ms > 0) {
      if (now_ms == 0) {
        now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
      }
      if (now_ms >= m.not_after_ms) {
        // Too late for this line (see OutMessage::not_after_ms): given up, as Paho gives up on a publish.
        expired_total_.fetch_add(1);
        const std::uint64_t tag = m.tag;
        queued_bytes_ -= queued_size(m);
        queue_.pop_front();
        events_.on_publish_done(PublishDone{tag, false});
        continue;
      }
      expiry_s = std::max<std::int64_t>(1, (m.not_after_ms - now_ms + 999) / 1000);
    }
    try {
      auto msg = mqtt::message_ptr_builder()
                     .topic(m.topic)
                     .payload(m.payload)
                     .qos(m.qos)
                     .retained(m.retain)
                     .finalize();
      if (opts_.mqtt_version == 5) {
        mqtt::properties props;
        if (expiry_s > 0) {
          props.add({mqtt::property::MESSAGE_EXPIRY_INTERVAL,
                     static_cast<int32_t>(std::min<std::int64_t>(expiry_s, 0x7fffffff))});
        }
        if (m.has_correlation_data) props.add({mqtt::property::CORRELATION_DATA, m.correlation_data});
        if (!m.response_topic.empty()) props.add({mqtt::property::RESPONSE_TOPIC, m.response_topic});
        msg->set_properties(std::move(props));
      }
      inflight_.fetch_add(1);
      client_->publish(msg, reinterpret_cast<void*>(m.tag), *callbacks_);
      queued_bytes_ -= queued_size(m);
      queue_.pop_front();
    } catch (const mqtt::exception& e) {
      inflight_.fetch_sub(1);
      // -12 / disconnected: keep the message and try again on the next pump.
      spdlog::debug("publish to {} deferred: {}", m.topic, e.what());
      return;
    }
  }
}

}  // namespace dispatch::service
