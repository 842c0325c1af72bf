// MqttLink: the service's one MQTT connection, and the only place dispatchd touches an MQTT library
// (libmosquitto, the broker project's C client: one network thread, no copies beyond its own queue;
// docs/performance.md measured Paho's two threads and per-message cost as a third of dispatchd's CPU).
//
// - MQTT 5, clean start false with a session expiry so subscriptions survive reconnects; automatic
//   reconnect (1 s, backing off to 10 s), and every (re)connect re-subscribes (cheap, and covers a broker
//   that lost the session).
// - TCP_NODELAY on the client socket (libmosquitto's MOSQ_OPT_TCP_NODELAY, stack.md P4), and the writes of
//   one pass of the network thread corked (TCP_CORK) and pushed together at its end: one segment for a
//   batch of small packets instead of one each, with no added wait.
// - The network thread runs its own loop (loop_once: poll() of the socket and of an eventfd, then
//   libmosquitto's read, write and keep-alive steps), woken by the owner once per pump() that handed
//   messages on. mosquitto_loop() wakes on a socket pair libmosquitto writes one byte to per packet queued
//   and reads one byte per pass: a select() pass per packet (1000 publishes: 667 passes; ours: 89).
// - Publishes are windowed: at most `max_inflight()` un-acknowledged QoS 1 publishes are handed to
//   libmosquitto; the rest wait in the link's own queue, where a deadline can still be checked. The queue is
//   drained from both sides: by pump() on the owner's thread, and by the network thread as soon as an
//   acknowledgement (or a CONNACK) opens the window, so the window stays full while the owner's loop is busy
//   (a commit's fsync, a batch of replies): every queued message is already durable where it must be
//   (durable before visible is the owner's rule for what it queues). Messages leave in queue order. The
//   window is the broker's Receive Maximum from the CONNACK (MQTT 5; absent means 65535), at most
//   `max_inflight` when that is set, and at most `max_buffered`. Never more than the Receive Maximum (a
//   publish beyond it would only wait in the client library, past our deadline check; stack.md P2 measured
//   Paho stalling there). MQTT 3.1.1 has no Receive Maximum: the window is `max_inflight`, or 20 (mosquitto's
//   default max_inflight_messages).
// - A message past its deadline (OutMessage::not_after_ms) when its turn comes is not handed on: it is
//   reported given up (PublishDone ok = false) and counted (expired_total).
// - The link's queue is bounded by bytes with back-pressure, never by dropping: publish() always queues, and
//   while the queued bytes are at or over `max_queued_bytes` has_room() is false and the owner stops feeding
//   the link (the service loop takes no device message, whose answer would land here, and pumps no outbox
//   item) until it drains.
// - libmosquitto's callbacks (its network thread) only hand values to LinkEvents (the service's
//   EventQueue); no exception crosses a callback.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol/core/result.h"
#include "service/mqtt/message.h"

struct mosquitto;

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
  int max_inflight = 0;  // upper bound of the window; 0: the broker's Receive Maximum
  int max_buffered = 10000;
  // Bytes (topic, payload and properties) waiting in the link's queue at which has_room() turns false.
  std::size_t max_queued_bytes = 32 * 1024 * 1024;
  // The owner's estimate of the largest answer one device message can cause, before any was seen
  // (the daemon: a download chunk of provisioning.max_chunk_bytes and its header).
  std::size_t answer_estimate_bytes = 0;
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
  // Starts the network thread (once) and waits up to timeout_ms for a CONNACK that accepts the connection,
  // or for the next attempt to fail (its reason is in the error). The thread keeps trying in the background
  // (every second until a connection is accepted, then reconnecting after every loss); connect() again
  // waits for its next result.
  core::Status connect(int timeout_ms);
  void disconnect(int timeout_ms);
  bool connected() const { return connected_.load(); }

  // Queues a message, whatever the queued bytes (nothing is dropped); it is handed on by pump()
  // within the in-flight window. The owner stops producing while !has_room().
  void publish(OutMessage m);
  // Bytes of the messages in the link's queue (not yet handed on), as queued_size() counts them.
  std::size_t queued_bytes() const { return queued_bytes_.load(); }
  std::size_t max_queued_bytes() const { return opts_.max_queued_bytes; }
  // False while the queued bytes are at or over max_queued_bytes: the owner must not feed the link.
  // One message larger than the budget is still queued; the link then has no room until it is sent.
  bool has_room() const { return queued_bytes_.load() < opts_.max_queued_bytes; }
  // The largest queued_size() of a message queued in the last one to two minutes (0 before the first):
  // the owner sizes its batches of device messages by it (device_message_allowance in daemon.h).
  std::size_t recent_largest() const;
  std::size_t answer_estimate_bytes() const { return opts_.answer_estimate_bytes; }
  // What a message costs in the queue: topic, payload, correlation data and response topic.
  static std::size_t queued_size(const OutMessage& m) {
    return m.topic.size() + m.payload.size() + m.correlation_data.size() + m.response_topic.size();
  }
  // Hands queued messages to libmosquitto while the window allows. Call from the owner's loop after
  // publish(); the network thread also calls it whenever the window opens.
  void pump();
  // Messages queued in the link or in flight to the broker.
  size_t backlog() const;
  std::uint64_t published_total() const { return published_total_.load(); }
  // Messages not published because their deadline (not_after_ms) passed while they waited in the queue.
  std::uint64_t expired_total() const { return expired_total_.load(); }
  // Messages refused by libmosquitto (e.g. over the broker's Maximum Packet Size) or by the broker (a PUBACK
  // reason code of 0x80 or more), reported given up with PublishDone::refused.
  std::uint64_t refused_total() const { return refused_total_.load(); }
  // Publishes handed to libmosquitto and not yet acknowledged (QoS 1) or written (QoS 0); at most
  // max_inflight().
  int inflight() const { return inflight_.load(); }
  // The publish window (see the top of this file); before the first CONNACK, 20 within the options.
  int max_inflight() const { return window_.load(); }
  // The window for these options and a CONNACK's Receive Maximum (0: the CONNACK had none).
  static int window_for(const LinkOptions& o, int receive_maximum);
  // The broker's Maximum Packet Size from the MQTT 5 CONNACK, bytes; 0 when it announced none (or 3.1.1).
  std::size_t max_packet_bytes() const { return max_packet_bytes_.load(); }

  // Passes of the network thread's loop since start (one poll() each): tests read it to see that a batch of
  // publishes costs a wake-up, not one per message.
  std::uint64_t loop_passes() const { return loop_passes_.load(); }

  // Called by the owner on LinkUp: re-subscribes.
  void on_connected();

 private:
  struct Callbacks;                                      // libmosquitto's callbacks (mqtt_link.cpp)
  void on_acknowledged(int mid, bool ok, bool refused);  // network thread: a PUBACK (or a QoS 0 write)
  int pump_locked();  // pump() with mu_ held: how many messages it handed to libmosquitto
  // The network thread's loop: one poll() of the socket and wake_fd_ (at most timeout_ms), then
  // libmosquitto's read, write and keep-alive steps. Returns libmosquitto's error that ends the connection.
  int loop_once(int timeout_ms);
  // Wakes the network thread from its poll() (after the owner's thread queued packets in libmosquitto).
  void wake();
  void note_refused(const char* by, int code, const char* why);
  void run_network();  // the network thread: (re)connects and runs libmosquitto's loop until stop_
  void note_attempt_failed(std::string why);
  void stop_network(int timeout_ms);

  LinkOptions opts_;
  LinkEvents& events_;
  mosquitto* mosq_ = nullptr;
  std::string setup_error_;  // a TLS setting libmosquitto refused: every connect() fails with it
  // An eventfd: the owner's thread writes it once per pump() that handed messages on. (libmosquitto also
  // writes a byte to its own socket pair for every packet it queues, for mosquitto_loop()'s select(), which
  // then read one byte per pass: a wake-up and two system calls per packet. Our loop does not watch that
  // pair; once its buffer is full, each of those writes fails at once with EAGAIN.)
  int wake_fd_ = -1;
  std::thread network_;
  std::atomic<bool> stop_{false};
  // Connection attempts that failed (before a CONNACK accepted them), and why the last one did; the
  // network thread writes them, connect() waits for them.
  std::mutex connect_mu_;
  std::condition_variable connect_cv_;
  std::uint64_t failed_attempts_ = 0;
  std::string last_error_;
  std::string last_log_error_;   // libmosquitto's last error line, while no connection was ever accepted
  std::string connack_refusal_;  // the reason of a CONNACK that refused the current attempt
  bool accepted_this_attempt_ = false;  // network thread only
  bool ever_accepted_ = false;          // network thread only
  // The queue, its bytes and the tags of the publishes in flight by message id, shared by the owner's thread
  // and the network thread. A tag is written under mu_ together with its publish call, so the network
  // thread's acknowledgement (which may come before the call returns) finds it.
  std::mutex mu_;
  std::deque<OutMessage> queue_;
  std::atomic<std::size_t> queued_bytes_{0};  // queued_size() of queue_'s messages
  std::atomic<std::size_t> queue_length_{0};
  std::vector<std::uint64_t> tags_;  // 65536 entries, indexed by message id
  std::vector<std::string> subscriptions_;
  std::vector<std::string> stale_subscriptions_;
  std::atomic<bool> connected_{false};
  std::atomic<int> inflight_{0};
  std::atomic<std::uint64_t> published_total_{0};
  std::atomic<std::uint64_t> expired_total_{0};
  std::atomic<std::uint64_t> refused_total_{0};
  std::atomic<std::uint64_t> loop_passes_{0};
  std::atomic<std::size_t> max_packet_bytes_{0};
  std::atomic<int> window_{1};
  // Largest message queued in the current and the previous minute (recent_largest), loop thread only.
  std::size_t largest_now_ = 0;
  std::size_t largest_before_ = 0;
  std::int64_t largest_minute_ = 0;
};

}  // namespace dispatch::service
