// Raw MQTT baselines for the benchmarks: thin wrappers on libmosquitto (the broker project's own C client),
// so a baseline is the best raw path through the broker and shares none of dispatch's code or limits.
// Bench-only: built when libmosquitto is found (tests/CMakeLists.txt); the service never links it.
//
// - RawClient: one MQTT 5 connection, TCP_NODELAY on, its network loop on libmosquitto's own thread.
//   QoS 1 publishes are windowed at the broker's Receive Maximum, read from the CONNACK (mosquitto's
//   `max_inflight_messages`; 65535 when the broker announces none): publish() blocks while the window is
//   full. Publishing from inside a message callback (the fleet, the echo) must not block on the window
//   (the loop thread is the one that reads the PUBACKs): publish_nowait() leaves the excess to
//   libmosquitto's own queue, which sends it as the broker's Receive Maximum allows.
// - RawPublisher: N messages to N distinct topics over K connections (one thread each).
// - RawFleet: answers every command line `<id> ...` on a request topic with `<id> s ok` on the matching
//   reply topic, once per command id (re-deliveries are not answered again).
// - RawEcho: answers every request on `<prefix>/req/<x>` with a fixed answer: on its MQTT 5 Response Topic
//   with its Correlation Data when it has one, else on `<prefix>/rep/<x>`.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

struct mosquitto;
struct mosquitto_message;
struct mqtt5__property;  // libmosquitto's mosquitto_property

namespace dispatch::bench {

using Clock = std::chrono::steady_clock;

// A time stamp written on a client thread and read on the main thread.
class Stamp {
 public:
  void set() { ticks_.store(Clock::now().time_since_epoch().count()); }
  Clock::time_point get() const { return Clock::time_point(Clock::duration(ticks_.load())); }

 private:
  std::atomic<Clock::rep> ticks_{0};
};

struct RawMessage {
  std::string topic;
  std::string payload;
};

class RawClient {
 public:
  // Connects (MQTT 5, clean start) and waits for the CONNACK; exits the process with a message on failure
  // (a benchmark without its baseline is no benchmark). receive_maximum is what this client announces to
  // the broker (how many QoS 1 messages the broker may have in flight to it).
  RawClient(const std::string& host, int port, int receive_maximum = 1000);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // The broker's Receive Maximum from the CONNACK: this client's QoS 1 publish window.
  int window() const { return window_; }
  // Subscribes (QoS 1) and waits for the SUBACK. Set the handler first: it runs on the loop thread.
  void subscribe(const std::string& filter);
  using Handler = std::function<void(const mosquitto_message&, const mqtt5__property* props)>;
  void set_handler(Handler handler) { handler_ = std::move(handler); }
  // QoS 1 publish, waiting while window() publishes are unacknowledged.
  void publish(const std::string& topic, const std::string& payload);
  // QoS 1 publish that never waits (from a message callback); libmosquitto queues beyond the window.
  void publish_nowait(const std::string& topic, const std::string& payload,
                      const mqtt5__property* props = nullptr);
  // Waits until every publish so far is acknowledged.
  void flush();

 private:
  friend struct RawCallbacks;  // libmosquitto's callbacks (raw_mqtt.cpp)
  void publish_nowait_counted(const std::string& topic, const std::string& payload,
                              const mqtt5__property* props);

  mosquitto* mosq_ = nullptr;
  Handler handler_;
  std::mutex mu_;
  std::condition_variable cv_;
  int window_ = 0;
  int inflight_ = 0;
  bool connected_ = false;
  int connect_rc_ = -1;
  int subacks_ = 0;
};

// Counts messages on a filter; remembers when the last one arrived.
class RawCounter {
 public:
  RawCounter(const std::string& host, int port, const std::vector<std::string>& filters);
  std::size_t count() const { return n_.load(); }
  void reset() { n_.store(0); }
  Clock::time_point last() const { return last_.get(); }
  // Waits until count() >= target or timeout_s passed; true when reached.
  bool wait_for(std::size_t target, int timeout_s) const;

 private:
  std::atomic<std::size_t> n_{0};
  Stamp last_;
  RawClient client_;
};

// Publishes topic_of(i), payload_of(i) for i in [0, n) over `connections` connections (their windows at
// the broker's Receive Maximum), one thread each; returns when every publish is acknowledged. window_out:
// the first connection's window.
void raw_publish(const std::string& host, int port, std::size_t n, int connections,
                 const std::function<std::string(std::size_t)>& topic_of,
                 const std::function<std::string(std::size_t)>& payload_of, int* window_out = nullptr);

class RawFleet {
 public:
  // Subscribes to `<request_prefix>/+` for each prefix and answers on `<reply_prefix>/<hw>`.
  RawFleet(const std::string& host, int port,
           const std::vector<std::pair<std::string, std::string>>& request_reply_prefixes);
  std::size_t requests() const { return requests_.load(); }
  std::size_t answered() const { return answered_.load(); }
  Clock::time_point last_request() const { return last_request_.get(); }

 private:
  std::vector<std::pair<std::string, std::string>> prefixes_;
  std::mutex mu_;
  std::unordered_set<std::string> seen_;
  std::atomic<std::size_t> requests_{0}, answered_{0};
  Stamp last_request_;
  RawClient client_;
};

class RawEcho {
 public:
  // Answers `<prefix>/req/<x>` on `<prefix>/rep/<x>` with `answer`, or with `chunk` when the request starts
  // with 'D' (the download baseline).
  RawEcho(const std::string& host, int port, const std::string& prefix, std::string answer,
          std::string chunk = {});
  void set_answer(std::string answer);

 private:
  std::string prefix_;
  std::shared_ptr<const std::string> answer_;
  std::string chunk_;
  std::mutex mu_;
  RawClient client_;
};

// host and port of a tcp://host:port URI.
std::pair<std::string, int> split_uri(const std::string& uri);

}  // namespace dispatch::bench
