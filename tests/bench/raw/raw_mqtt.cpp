#include "tests/bench/raw/raw_mqtt.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

namespace dispatch::bench {

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "raw mqtt baseline: %s\n", what.c_str());
  std::exit(1);
}

struct LibInit {
  LibInit() { mosquitto_lib_init(); }
};

}  // namespace

struct RawCallbacks {
  static void on_connect(mosquitto*, void* obj, int rc, int, const mosquitto_property* props) {
    auto* c = static_cast<RawClient*>(obj);
    std::uint16_t receive_max = 65535;  // MQTT 5: absent means 65535
    mosquitto_property_read_int16(props, MQTT_PROP_RECEIVE_MAXIMUM, &receive_max, false);
    std::lock_guard lk(c->mu_);
    c->connect_rc_ = rc;
    c->connected_ = rc == 0;
    c->window_ = receive_max;
    c->cv_.notify_all();
  }
  static void on_publish(mosquitto*, void* obj, int, int, const mosquitto_property*) {
    auto* c = static_cast<RawClient*>(obj);
    std::lock_guard lk(c->mu_);
    --c->inflight_;
    c->cv_.notify_all();
  }
  static void on_subscribe(mosquitto*, void* obj, int, int, const int*, const mosquitto_property*) {
    auto* c = static_cast<RawClient*>(obj);
    std::lock_guard lk(c->mu_);
    ++c->subacks_;
    c->cv_.notify_all();
  }
  static void on_message(mosquitto*, void* obj, const mosquitto_message* m, const mosquitto_property* props) {
    auto* c = static_cast<RawClient*>(obj);
    if (c->handler_) c->handler_(*m, props);
  }
};

std::pair<std::string, int> split_uri(const std::string& uri) {
  auto rest = uri.substr(uri.find("://") == std::string::npos ? 0 : uri.find("://") + 3);
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, 1883};
  return {rest.substr(0, colon), std::atoi(rest.c_str() + colon + 1)};
}

RawClient::RawClient(const std::string& host, int port, int receive_maximum) {
  static LibInit init;
  mosq_ = mosquitto_new(nullptr, true, this);
  if (!mosq_) die("mosquitto_new failed");
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_int_option(mosq_, MOSQ_OPT_RECEIVE_MAXIMUM, receive_maximum);
  mosquitto_connect_v5_callback_set(mosq_, &RawCallbacks::on_connect);
  mosquitto_publish_v5_callback_set(mosq_, &RawCallbacks::on_publish);
  mosquitto_subscribe_v5_callback_set(mosq_, &RawCallbacks::on_subscribe);
  mosquitto_message_v5_callback_set(mosq_, &RawCallbacks::on_message);
  if (int rc = mosquitto_connect_bind_v5(mosq_, host.c_str(), port, 30, nullptr, nullptr);
      rc != MOSQ_ERR_SUCCESS)
    die("connect to " + host + ":" + std::to_string(port) + ": " + mosquitto_strerror(rc));
  if (mosquitto_loop_start(mosq_) != MOSQ_ERR_SUCCESS) die("mosquitto_loop_start failed");
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, std::chrono::seconds(10), [&] { return connect_rc_ >= 0; }) || !connected_)
    die("no CONNACK from " + host + ":" + std::to_string(port));
}

RawClient::~RawClient() {
  mosquitto_disconnect(mosq_);
  mosquitto_loop_stop(mosq_, false);
  mosquitto_destroy(mosq_);
}

void RawClient::subscribe(const std::string& filter) {
  int before;
  {
    std::lock_guard lk(mu_);
    before = subacks_;
  }
  if (int rc = mosquitto_subscribe_v5(mosq_, nullptr, filter.c_str(), 1, 0, nullptr); rc != MOSQ_ERR_SUCCESS)
    die("subscribe " + filter + ": " + mosquitto_strerror(rc));
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, std::chrono::seconds(10), [&] { return subacks_ > before; }))
    die("no SUBACK for " + filter);
}

void RawClient::publish(const std::string& topic, const std::string& payload) {
  {
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, std::chrono::seconds(60), [&] { return inflight_ < window_; }))
      die("publish window did not drain within 60 s");
    ++inflight_;
  }
  publish_nowait_counted(topic, payload, nullptr);
}

void RawClient::publish_nowait(const std::string& topic, const std::string& payload,
                               const mosquitto_property* props) {
  {
    std::lock_guard lk(mu_);
    ++inflight_;
  }
  publish_nowait_counted(topic, payload, props);
}

void RawClient::publish_nowait_counted(const std::string& topic, const std::string& payload,
                                       const mosquitto_property* props) {
  int rc = mosquitto_publish_v5(mosq_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                                payload.data(), 1, false, props);
  if (rc != MOSQ_ERR_SUCCESS) die("publish to " + topic + ": " + mosquitto_strerror(rc));
}

void RawClient::flush() {
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, std::chrono::seconds(120), [&] { return inflight_ <= 0; }))
    die("publishes not acknowledged within 120 s");
}

RawCounter::RawCounter(const std::string& host, int port, const std::vector<std::string>& filters)
    : client_(host, port) {
  client_.set_handler([this](const mosquitto_message&, const mosquitto_property*) {
    last_.set();
    n_.fetch_add(1, std::memory_order_relaxed);
  });
  for (const auto& f : filters) client_.subscribe(f);
}

bool RawCounter::wait_for(std::size_t target, int timeout_s) const {
  auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  while (n_.load() < target && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return n_.load() >= target;
}

void raw_publish(const std::string& host, int port, std::size_t n, int connections,
                 const std::function<std::string(std::size_t)>& topic_of,
                 const std::function<std::string(std::size_t)>& payload_of, int* window_out) {
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int c = 0; c < connections; ++c) clients.push_back(std::make_unique<RawClient>(host, port));
  if (window_out) *window_out = clients.front()->window();
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      for (std::size_t i = static_cast<std::size_t>(c); i < n; i += static_cast<std::size_t>(connections))
        clients[c]->publish(topic_of(i), payload_of(i));
      clients[c]->flush();
    });
  }
  for (auto& t : threads) t.join();
}

RawFleet::RawFleet(const std::string& host, int port,
                   const std::vector<std::pair<std::string, std::string>>& request_reply_prefixes)
    : prefixes_(request_reply_prefixes), client_(host, port) {
  client_.set_handler([this](const mosquitto_message& m, const mosquitto_property*) {
    last_request_.set();
    requests_.fetch_add(1, std::memory_order_relaxed);
    const std::string topic(m.topic);
    const std::string payload(static_cast<const char*>(m.payload), static_cast<std::size_t>(m.payloadlen));
    std::string id = payload.substr(0, payload.find(' '));
    {
      std::lock_guard lk(mu_);
      if (!seen_.insert(id).second) return;  // a re-delivery: already answered
    }
    const auto slash = topic.rfind('/');
    const std::string prefix = topic.substr(0, slash);
    for (const auto& [req, rep] : prefixes_) {
      if (req == prefix) {
        client_.publish_nowait(rep + topic.substr(slash), id + " s ok");
        answered_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
  });
  for (const auto& p : prefixes_) client_.subscribe(p.first + "/+");
}

RawEcho::RawEcho(const std::string& host, int port, const std::string& prefix, std::string answer,
                 std::string chunk)
    : prefix_(prefix),
      answer_(std::make_shared<const std::string>(std::move(answer))),
      chunk_(std::move(chunk)),
      client_(host, port) {
  client_.set_handler([this](const mosquitto_message& m, const mosquitto_property* props) {
    const bool chunk = m.payloadlen > 0 && static_cast<const char*>(m.payload)[0] == 'D' && !chunk_.empty();
    std::shared_ptr<const std::string> answer;
    {
      std::lock_guard lk(mu_);
      answer = answer_;
    }
    const std::string& body = chunk ? chunk_ : *answer;
    char* response_topic = nullptr;
    if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &response_topic, false)) {
      void* corr = nullptr;
      std::uint16_t corr_len = 0;
      mosquitto_property* out = nullptr;
      if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len, false))
        mosquitto_property_add_binary(&out, MQTT_PROP_CORRELATION_DATA, corr, corr_len);
      client_.publish_nowait(response_topic, body, out);
      mosquitto_property_free_all(&out);
      std::free(corr);
      std::free(response_topic);
      return;
    }
    const std::string topic(m.topic);
    client_.publish_nowait(prefix_ + "/rep/" + topic.substr(topic.rfind('/') + 1), body);
  });
  client_.subscribe(prefix_ + "/req/+");
}

void RawEcho::set_answer(std::string answer) {
  std::lock_guard lk(mu_);
  answer_ = std::make_shared<const std::string>(std::move(answer));
}

}  // namespace dispatch::bench
