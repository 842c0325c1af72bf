#include "service/mqtt/mqtt_link.h"

#include <fmt/format.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "service/mqtt/broker_uri.h"

namespace dispatch::service {

namespace {

// Mosquitto's default max_inflight_messages: the window for MQTT 3.1.1 (no Receive Maximum), and until the
// first CONNACK has told the broker's.
constexpr int k_default_window = 20;
// How long the network thread waits in one poll(): the longest a stop waits for it.
constexpr int k_loop_timeout_ms = 100;

void init_library() {
  static const int once = [] { return mosquitto_lib_init(); }();
  (void)once;
}

// A property list of our own, freed at the end of its scope.
struct PropertyList {
  mosquitto_property* list = nullptr;
  PropertyList() = default;
  PropertyList(const PropertyList&) = delete;
  PropertyList& operator=(const PropertyList&) = delete;
  ~PropertyList() { mosquitto_property_free_all(&list); }
};

// libmosquitto's error, with errno's text when the error is a system call's.
std::string describe(int rc) {
  if (rc == MOSQ_ERR_ERRNO) return std::strerror(errno);
  return mosquitto_strerror(rc);
}

std::int64_t steady_minute() {
  return std::chrono::duration_cast<std::chrono::minutes>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// Run on the network thread: hand everything to LinkEvents and never let an exception escape.
struct MqttLink::Callbacks {
  static void on_connect(mosquitto*, void* obj, int rc, int, const mosquitto_property* props) {
    auto& link = *static_cast<MqttLink*>(obj);
    if (rc != 0) {
      // The attempt ends when the loop returns (run_network reports it): keep the broker's reason for it.
      try {
        std::lock_guard lk(link.connect_mu_);
        link.connack_refusal_ = fmt::format(
            "the broker refused the connection: {}",
            link.opts_.mqtt_version == 5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc));
      } catch (...) {
      }
      return;
    }
    // MQTT 5 CONNACK: the broker's Maximum Packet Size, when it sets one (a larger publish would make the
    // broker drop the connection; libmosquitto refuses it instead), and its Receive Maximum, which sets
    // the publish window (see mqtt_link.h). Read again at every connect.
    int receive_maximum = 0;
    std::size_t max_packet = 0;
    if (link.opts_.mqtt_version == 5) {
      std::uint16_t rm = 0;
      if (mosquitto_property_read_int16(props, MQTT_PROP_RECEIVE_MAXIMUM, &rm, false)) receive_maximum = rm;
      std::uint32_t mps = 0;
      if (mosquitto_property_read_int32(props, MQTT_PROP_MAXIMUM_PACKET_SIZE, &mps, false)) max_packet = mps;
    }
    link.max_packet_bytes_.store(max_packet);
    link.window_.store(window_for(link.opts_, receive_maximum));
    try {
      if (!link.ever_accepted_) {
        spdlog::info("the broker's maximum packet size: {}",
                     max_packet == 0 ? std::string("none announced") : fmt::format("{} bytes", max_packet));
        spdlog::info("MQTT publish window {} (broker Receive Maximum {}, mqtt.max_inflight {})",
                     link.window_.load(),
                     receive_maximum > 0 ? std::to_string(receive_maximum) : std::string("not announced"),
                     link.opts_.max_inflight > 0 ? std::to_string(link.opts_.max_inflight)
                                                 : std::string("0 = the broker's"));
      }
    } catch (...) {
    }
    link.accepted_this_attempt_ = true;
    link.ever_accepted_ = true;
    {
      std::lock_guard lk(link.connect_mu_);
      link.connected_.store(true);
    }
    link.connect_cv_.notify_all();
    link.events_.on_link_up();
    // What waited in the queue while the link was down goes out now, not at the owner's next pump.
    std::lock_guard lk(link.mu_);
    link.pump_locked();
  }

  static void on_disconnect(mosquitto*, void* obj, int rc, const mosquitto_property*) {
    auto& link = *static_cast<MqttLink*>(obj);
    if (!link.connected_.exchange(false)) return;  // a failed attempt is reported by the network thread
    try {
      link.events_.on_link_down(rc == MOSQ_ERR_SUCCESS ? std::string("disconnected") : describe(rc));
    } catch (...) {
    }
  }

  static void on_publish(mosquitto*, void* obj, int mid, int reason_code, const mosquitto_property*) {
    auto& link = *static_cast<MqttLink*>(obj);
    // A PUBACK reason code of 0x80 or more: the broker did not accept the message (MQTT 5 §3.4.2.1), e.g.
    // 0x87 not authorized by its ACL; sending it again would meet the same answer.
    if (reason_code >= 0x80)
      link.note_refused("the broker", reason_code, mosquitto_reason_string(reason_code));
    link.on_acknowledged(mid, reason_code < 0x80, reason_code >= 0x80);
  }

  static void on_message(mosquitto*, void* obj, const mosquitto_message* m, const mosquitto_property* props) {
    auto& link = *static_cast<MqttLink*>(obj);
    try {
      InboundMessage in;
      in.topic = m->topic;
      if (m->payloadlen > 0) {
        in.payload.assign(static_cast<const char*>(m->payload), static_cast<std::size_t>(m->payloadlen));
      }
      char* response_topic = nullptr;
      if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &response_topic, false)) {
        in.response_topic = response_topic;
        std::free(response_topic);
      }
      void* correlation = nullptr;
      std::uint16_t correlation_len = 0;
      if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &correlation, &correlation_len,
                                         false)) {
        in.correlation_data.assign(static_cast<const char*>(correlation), correlation_len);
        in.has_correlation_data = true;
        std::free(correlation);
      }
      link.events_.on_message(std::move(in));
    } catch (const std::exception& e) {
      spdlog::error("dropping an inbound message that could not be read: {}", e.what());
    }
  }

  // Set only while no connection was ever accepted: libmosquitto formats every log line it has (one per
  // packet) once a log callback is set, and before the first CONNACK its error lines are what says why a
  // connection failed (e.g. OpenSSL's certificate verification).
  static void on_log(mosquitto*, void* obj, int level, const char* text) {
    if ((level & MOSQ_LOG_ERR) == 0 || text == nullptr) return;
    auto& link = *static_cast<MqttLink*>(obj);
    try {
      std::lock_guard lk(link.connect_mu_);
      link.last_log_error_ = text;
    } catch (...) {
    }
  }
};

int MqttLink::window_for(const LinkOptions& o, int receive_maximum) {
  int w = o.mqtt_version == 5 ? (receive_maximum > 0 ? receive_maximum : 65535) : k_default_window;
  if (o.max_inflight > 0) w = o.mqtt_version == 5 ? std::min(w, o.max_inflight) : o.max_inflight;
  return std::max(1, std::min(w, o.max_buffered));
}

MqttLink::MqttLink(LinkOptions options, LinkEvents& events)
    : opts_(std::move(options)), events_(events), tags_(65536, 0) {
  window_.store(window_for(opts_, k_default_window));
  init_library();
  // clean_start false needs a client id; MQTT 5's clean start is libmosquitto's clean session flag.
  mosq_ = mosquitto_new(opts_.client_id.empty() ? nullptr : opts_.client_id.c_str(),
                        opts_.clean_start || opts_.client_id.empty(), this);
  if (mosq_ == nullptr) {
    setup_error_ = fmt::format("libmosquitto could not create a client: {}", std::strerror(errno));
    return;
  }
  // Publishes come from the service loop while the network thread reads and writes the socket:
  // libmosquitto then only queues them; the network thread (run_network's own loop) writes them once woken
  // by wake().
  mosquitto_threaded_set(mosq_, true);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    setup_error_ =
        fmt::format("cannot create the network thread's wake-up descriptor: {}", std::strerror(errno));
    return;
  }
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION,
                       opts_.mqtt_version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
  mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
  // What the broker may have in flight to us: as many as it allows (its max_inflight_messages bounds it);
  // a device message is acknowledged once the event queue holds it (back-pressure: EventQueue).
  mosquitto_int_option(mosq_, MOSQ_OPT_RECEIVE_MAXIMUM, 65535);
  mosquitto_connect_v5_callback_set(mosq_, &Callbacks::on_connect);
  mosquitto_disconnect_v5_callback_set(mosq_, &Callbacks::on_disconnect);
  mosquitto_publish_v5_callback_set(mosq_, &Callbacks::on_publish);
  mosquitto_message_v5_callback_set(mosq_, &Callbacks::on_message);
  mosquitto_log_callback_set(mosq_, &Callbacks::on_log);
  if (!opts_.username.empty() || !opts_.password.empty()) {
    mosquitto_username_pw_set(mosq_, opts_.username.c_str(),
                              opts_.password.empty() ? nullptr : opts_.password.c_str());
  }
  if (is_tls_uri(opts_.uri)) {
    // The chain must lead to ca_file (or the system's CA certificates), and unless tls_verify_hostname is
    // false the certificate must name the host of the URI.
    const char* ca = opts_.ca_file.empty() ? nullptr : opts_.ca_file.c_str();
    if (ca == nullptr) mosquitto_int_option(mosq_, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
    int rc = mosquitto_tls_set(mosq_, ca, ca == nullptr ? "/etc/ssl/certs" : nullptr,
                               opts_.cert_file.empty() ? nullptr : opts_.cert_file.c_str(),
                               opts_.key_file.empty() ? nullptr : opts_.key_file.c_str(), nullptr);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_insecure_set(mosq_, !opts_.tls_verify_hostname);
    if (rc != MOSQ_ERR_SUCCESS) {
      setup_error_ = fmt::format(
          "TLS settings refused ({}): check mqtt.ca_file, mqtt.cert_file and "
          "mqtt.key_file",
          describe(rc));
    }
  }
}

MqttLink::~MqttLink() {
  stop_network(2000);
  if (mosq_ != nullptr) mosquitto_destroy(mosq_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void MqttLink::wake() {
  const std::uint64_t one = 1;
  // A full counter (never, at 2^64 - 2) or EAGAIN still leaves the descriptor readable: the thread wakes.
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

int MqttLink::loop_once(int timeout_ms) {
  const int sock = mosquitto_socket(mosq_);
  if (sock < 0) return MOSQ_ERR_NO_CONN;
  loop_passes_.fetch_add(1, std::memory_order_relaxed);
  pollfd fds[2] = {{sock, static_cast<short>(POLLIN | (mosquitto_want_write(mosq_) ? POLLOUT : 0)), 0},
                   {wake_fd_, POLLIN, 0}};
  if (::poll(fds, 2, timeout_ms) < 0) return errno == EINTR ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ERRNO;
  if ((fds[1].revents & POLLIN) != 0) {
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = ::read(wake_fd_, &count, sizeof count);
  }
  if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
    if (int rc = mosquitto_loop_read(mosq_, 1); rc != MOSQ_ERR_SUCCESS) return rc;
  }
  // Whatever the read queued (PUBACKs, the publishes the acknowledgements let into the window) and
  // whatever the owner queued before waking us goes out now, in as few TCP segments as the kernel makes
  // of them: corked, the writes of one pass are one segment where they fit (each would be its own with
  // TCP_NODELAY), which is what the broker's reads and both sides' TCP stacks pay per.
  if (mosquitto_want_write(mosq_)) {
    const int on = 1;
    const int off = 0;
    const bool corked = ::setsockopt(sock, IPPROTO_TCP, TCP_CORK, &on, sizeof on) == 0;
    const int rc = mosquitto_loop_write(mosq_, 1);
    if (corked && mosquitto_socket(mosq_) == sock)
      ::setsockopt(sock, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
    if (rc != MOSQ_ERR_SUCCESS) return rc;
  }
  return mosquitto_loop_misc(mosq_);
}

void MqttLink::set_subscriptions(std::vector<std::string> filters, std::vector<std::string> stale) {
  subscriptions_ = std::move(filters);
  stale_subscriptions_ = std::move(stale);
}

void MqttLink::note_attempt_failed(std::string why) {
  {
    std::lock_guard lk(connect_mu_);
    ++failed_attempts_;
    last_error_ = std::move(why);
  }
  connect_cv_.notify_all();
}

void MqttLink::run_network() {
  const auto address = parse_broker_uri(opts_.uri);
  PropertyList connect_props;
  if (opts_.mqtt_version == 5 && opts_.session_expiry_s > 0) {
    mosquitto_property_add_int32(&connect_props.list, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                 static_cast<std::uint32_t>(opts_.session_expiry_s));
  }
  int delay_s = 0;
  const auto sleep_unless_stopped = [this](int seconds) {
    std::unique_lock lk(connect_mu_);
    connect_cv_.wait_for(lk, std::chrono::seconds(seconds), [this] { return stop_.load(); });
  };
  // Why the attempt that just ended failed, with libmosquitto's own error line when it logged one.
  const auto failed = [this, &delay_s](int rc) {
    std::string why = describe(rc);
    {
      std::lock_guard lk(connect_mu_);
      if (!connack_refusal_.empty()) {
        why = std::move(connack_refusal_);  // libmosquitto's error for it only says "protocol error"
      } else if (!last_log_error_.empty()) {
        why += " (" + last_log_error_ + ")";
      }
      last_log_error_.clear();
      connack_refusal_.clear();
    }
    note_attempt_failed(std::move(why));
    // Until a connection was accepted once, every second (the owner reports each failure); after that,
    // backing off to 10 s.
    delay_s = ever_accepted_ ? std::min(10, std::max(1, delay_s * 2)) : 1;
  };
  while (!stop_.load()) {
    if (delay_s > 0) {
      sleep_unless_stopped(delay_s);
      if (stop_.load()) break;
    }
    // Blocking: the TCP connect and the TLS handshake happen here, on this thread; CONNECT is queued.
    // In flight publishes stay in libmosquitto across attempts and are sent again after the CONNACK.
    accepted_this_attempt_ = false;
    const int rc = mosquitto_connect_bind_v5(mosq_, address->host.c_str(), address->port, opts_.keepalive_s,
                                             nullptr, connect_props.list);
    if (rc != MOSQ_ERR_SUCCESS) {
      failed(rc);
      continue;
    }
    int loop_rc = MOSQ_ERR_SUCCESS;
    while (loop_rc == MOSQ_ERR_SUCCESS && !stop_.load()) loop_rc = loop_once(k_loop_timeout_ms);
    if (stop_.load()) {
      // disconnect() queued DISCONNECT: let the loop write it (the socket then closes).
      for (int i = 0; i < 10 && loop_rc == MOSQ_ERR_SUCCESS; ++i) loop_rc = loop_once(50);
      break;
    }
    if (accepted_this_attempt_) {
      // The connection was lost (on_disconnect told the owner): reconnect after 1 s, backing off from there.
      delay_s = 1;
    } else {
      failed(loop_rc);
    }
  }
}

core::Status MqttLink::connect(int timeout_ms) {
  if (!setup_error_.empty()) {
    return core::make_error(core::ErrorCode::unavailable,
                            fmt::format("cannot connect to {}: {}", opts_.uri, setup_error_));
  }
  if (!parse_broker_uri(opts_.uri)) {
    return core::make_error(core::ErrorCode::bad_request,
                            fmt::format("cannot connect to {}: not a broker URI (tcp://host:port, "
                                        "mqtt://, ssl:// or mqtts://)",
                                        opts_.uri));
  }
  std::unique_lock lk(connect_mu_);
  const std::uint64_t failed_before = failed_attempts_;
  if (!network_.joinable()) {
    stop_.store(false);
    network_ = std::thread([this] { run_network(); });
  }
  const bool settled = connect_cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] {
    return connected_.load() || failed_attempts_ > failed_before;
  });
  if (connected_.load()) {
    lk.unlock();
    mosquitto_log_callback_set(mosq_, nullptr);
    return {};
  }
  const std::string why = settled ? last_error_ : fmt::format("no CONNACK within {} ms", timeout_ms);
  return core::make_error(core::ErrorCode::unavailable,
                          fmt::format("cannot connect to {}: {}{}", opts_.uri, why, tls_failure_hint(opts_)));
}

void MqttLink::on_connected() {
  for (const auto& f : stale_subscriptions_) {
    // Unsubscribing from a filter the session does not have is harmless (reason "no subscription").
    if (int rc = mosquitto_unsubscribe_v5(mosq_, nullptr, f.c_str(), nullptr); rc != MOSQ_ERR_SUCCESS)
      spdlog::warn("unsubscribe {} failed: {}", f, describe(rc));
  }
  for (const auto& f : subscriptions_) {
    if (int rc = mosquitto_subscribe_v5(mosq_, nullptr, f.c_str(), 1, 0, nullptr); rc != MOSQ_ERR_SUCCESS)
      spdlog::error("subscribe {} failed: {}", f, describe(rc));
  }
  wake();
}

void MqttLink::stop_network(int timeout_ms) {
  if (!network_.joinable()) return;
  {
    std::lock_guard lk(connect_mu_);
    stop_.store(true);
  }
  connect_cv_.notify_all();
  if (mosq_ != nullptr) mosquitto_disconnect(mosq_);  // DISCONNECT is written if connected
  wake();
  (void)timeout_ms;  // the thread sees stop_ at once (woken), or within one poll() (k_loop_timeout_ms)
  network_.join();
  connected_.store(false);
}

void MqttLink::disconnect(int timeout_ms) { stop_network(timeout_ms); }

void MqttLink::publish(OutMessage m) {
  const std::size_t size = queued_size(m);
  const std::int64_t minute = steady_minute();
  if (minute != largest_minute_) {
    largest_before_ = minute == largest_minute_ + 1 ? largest_now_ : 0;
    largest_now_ = 0;
    largest_minute_ = minute;
  }
  largest_now_ = std::max(largest_now_, size);
  std::lock_guard lk(mu_);
  queued_bytes_ += size;
  queue_.push_back(std::move(m));
  queue_length_.store(queue_.size());
}

std::size_t MqttLink::recent_largest() const {
  const std::int64_t minute = steady_minute();
  if (minute == largest_minute_) return std::max(largest_now_, largest_before_);
  return minute == largest_minute_ + 1 ? largest_now_ : 0;
}

size_t MqttLink::backlog() const { return queue_length_.load() + static_cast<size_t>(inflight_.load()); }

void MqttLink::on_acknowledged(int mid, bool ok, bool refused) {
  std::uint64_t tag = 0;
  {
    std::lock_guard lk(mu_);
    tag = tags_[static_cast<std::uint16_t>(mid)];
    inflight_.fetch_sub(1);
    published_total_.fetch_add(ok ? 1 : 0);
    pump_locked();  // the window opened: the next queued message goes out now
  }
  events_.on_publish_done(PublishDone{tag, ok, refused});
}

void MqttLink::note_refused(const char* by, int code, const char* why) {
  // Our own messages (answers, command lines, events) are refused only by a broker limit or ACL: logged
  // at the first and then every 1000th, so that a refusing broker cannot flood the log.
  const std::uint64_t n = refused_total_.fetch_add(1) + 1;
  if (n == 1 || n % 1000 == 0) {
    try {
      spdlog::error("{} refused a message ({}: {}); {} refused since start, each reported given up", by, code,
                    why, n);
    } catch (...) {
    }
  }
}

void MqttLink::pump() {
  std::lock_guard lk(mu_);
  if (pump_locked() > 0) wake();
}

int MqttLink::pump_locked() {
  const int window = window_.load();
  int handed = 0;
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
        // Too late for this line (see OutMessage::not_after_ms): given up.
        expired_total_.fetch_add(1);
        const std::uint64_t tag = m.tag;
        queued_bytes_ -= queued_size(m);
        queue_.pop_front();
        queue_length_.store(queue_.size());
        events_.on_publish_done(PublishDone{tag, false});
        continue;
      }
      expiry_s = std::max<std::int64_t>(1, (m.not_after_ms - now_ms + 999) / 1000);
    }
    PropertyList props;
    if (opts_.mqtt_version == 5) {
      if (expiry_s > 0) {
        mosquitto_property_add_int32(
            &props.list, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
            static_cast<std::uint32_t>(std::min<std::int64_t>(expiry_s, 0x7fffffff)));
      }
      if (m.has_correlation_data) {
        mosquitto_property_add_binary(&props.list, MQTT_PROP_CORRELATION_DATA, m.correlation_data.data(),
                                      static_cast<std::uint16_t>(m.correlation_data.size()));
      }
      if (!m.response_topic.empty())
        mosquitto_property_add_string(&props.list, MQTT_PROP_RESPONSE_TOPIC, m.response_topic.c_str());
    }
    int rc = MOSQ_ERR_SUCCESS;
    inflight_.fetch_add(1);
    // mu_ is held across the call: the acknowledgement may arrive on the network thread before it returns.
    int mid = 0;
    rc = mosquitto_publish_v5(mosq_, &mid, m.topic.c_str(), static_cast<int>(m.payload.size()),
                              m.payload.data(), m.qos, m.retain, props.list);
    if (rc == MOSQ_ERR_SUCCESS) tags_[static_cast<std::uint16_t>(mid)] = m.tag;
    if (rc == MOSQ_ERR_SUCCESS) {
      queued_bytes_ -= queued_size(m);
      queue_.pop_front();
      queue_length_.store(queue_.size());
      ++handed;
      continue;
    }
    inflight_.fetch_sub(1);
    if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_NOMEM) {
      // Disconnected meanwhile: keep the message and try again on the next pump.
      spdlog::debug("publish to {} deferred: {}", m.topic, describe(rc));
      return handed;
    }
    // The message itself is refused (a topic or payload libmosquitto rejects, larger than the broker's
    // Maximum Packet Size): it can never be published; report it given up.
    note_refused("libmosquitto", rc, mosquitto_strerror(rc));
    const std::uint64_t tag = m.tag;
    queued_bytes_ -= queued_size(m);
    queue_.pop_front();
    queue_length_.store(queue_.size());
    events_.on_publish_done(PublishDone{tag, false, true});
  }
  return handed;
}

}  // namespace dispatch::service
