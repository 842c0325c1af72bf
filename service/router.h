// Router: the one table from an incoming message to its handler, and the one place that does what every
// handler would otherwise repeat (mosquitto's handle__packet is the model):
//   - the size guard, before any parsing;
//   - parsing (JSON requests, upload frames);
//   - the reply topic: the MQTT 5 Response Topic, else the payload's reply_to; never a topic in a
//     reserved namespace (device, API or event roots) and never a wildcard;
//   - the correlation echo: MQTT 5 Correlation Data as is, and the JSON correlation_id;
//   - one try/catch around every handler, API and device alike: a throwing handler is logged and
//     answered internal (when its message expects an answer), never a dead service;
//   - the error→wire mapping (protocol::error_payload); unavailable and internal errors go out with a
//     generic message, their detail (e.g. SQLite's text) only to the log.
//
// Routes: API {resource, action} → handler of the parsed body (or of an upload frame), and device
// TopicKind → handler. Called from the service loop thread only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/core/result.h"
#include "protocol/frame.h"
#include "protocol/topics.h"
#include "service/event_queue.h"
#include "service/metrics.h"
#include "service/publisher.h"

namespace dispatch::service {

// Counters for messages dropped rather than answered (there is nobody to answer).
// The number of protocol::TopicKind values (inbound counts are kept per kind).
inline constexpr std::size_t k_topic_kinds =
    static_cast<std::size_t>(protocol::TopicKind::campaign_event) + 1;

struct RouterCounters {
  // Every message dispatched, by the kind of its topic (index: TopicKind); unknown topics are counted in
  // invalid_topics only.
  std::array<std::uint64_t, k_topic_kinds> inbound{};
  std::uint64_t invalid_topics = 0;         // unknown topic, or a device topic with an invalid hardware id
  std::uint64_t unanswerable_requests = 0;  // API request with no usable Response Topic or reply_to
  std::uint64_t oversize_device_messages = 0;
  std::uint64_t handler_failures = 0;  // handlers that threw
};

struct RouterLimits {
  std::size_t api_max_bytes = 256 * 1024;  // API JSON requests
  int api_max_depth = 32;
  int device_qos = 1;  // QoS of the answers on device topics
};

// Where an answer goes back to, and what it echoes.
struct Correlation {
  std::optional<std::string> data;  // MQTT 5 Correlation Data, echoed as is
  std::optional<std::string> id;    // JSON correlation_id, echoed in the answer document
};

// The one correlation echo: Correlation Data from the MQTT 5 properties, correlation_id from the request
// document (a JSON body or a frame header; null when there is none).
Correlation correlation_of(const InboundMessage& m, const nlohmann::json* fields);

// The generic form of an error for the wire: unavailable and internal lose their detail.
core::Error wire_error(const core::Error& e);

// The one answer to a device request, for the router's device routes and for handlers that answer
// themselves (provisioning): on the device's own topic of `kind`, or on the request's Response Topic when
// PROTOCOL §2.1 allows it; Correlation Data and correlation_id echoed; errors in their wire form
// (wire_error; unavailable and internal are logged with their detail).
class DeviceAnswers {
 public:
  DeviceAnswers(const protocol::Topics& topics, Publisher& publisher, int qos)
      : topics_(topics), publisher_(publisher), qos_(qos) {}

  // `hw` must be a valid hardware id. A JSON answer: the document, or the error payload.
  void answer(protocol::TopicKind kind, const std::string& hw, const InboundMessage& request,
              const Correlation& c, const core::Result<nlohmann::json>& r);
  // A frame answer (PROTOCOL §2.4): the header and the bytes, or an error-only frame.
  void answer_frame(protocol::TopicKind kind, const std::string& hw, const InboundMessage& request,
                    const Correlation& c, const core::Result<protocol::Frame>& r);

 private:
  void publish(protocol::TopicKind kind, const std::string& hw, const InboundMessage& request,
               const Correlation& c, std::string payload, const core::Error* error);

  const protocol::Topics& topics_;
  Publisher& publisher_;
  int qos_;
};

class Router {
 public:
  // API handlers: the parsed request body in, the answer document or an error out.
  using ApiHandler = std::function<core::Result<nlohmann::json>(const nlohmann::json& body)>;
  // packages/upload: the frame's JSON header and its bytes.
  using FrameHandler =
      std::function<core::Result<nlohmann::json>(const nlohmann::json& header, std::string_view bytes)>;
  // Device messages that are consumed (or answered by the handler itself).
  using DeviceHandler = std::function<void(const std::string& hw, const InboundMessage& m)>;
  // Device requests answered by the router: the parsed JSON body (an empty payload reads as {}).
  using DeviceRequestHandler =
      std::function<core::Result<nlohmann::json>(const std::string& hw, const nlohmann::json& body)>;
  // Takes over a device message over its route's size limit (instead of the generic too_large answer),
  // e.g. a package query that must still count in the device's rate window (PROTOCOL §2.1).
  using OversizeHandler =
      std::function<void(const std::string& hw, const InboundMessage& m, std::size_t limit)>;
  // Called for every device message that passed the guards, before its handler (presence).
  using DeviceHook = std::function<void(protocol::TopicKind kind, const std::string& hw)>;

  Router(const protocol::Topics& topics, Publisher& publisher, RouterLimits limits);

  // Registering a route twice replaces the first one.
  void add_api(std::string resource, std::string action, ApiHandler handler);
  // A frame route: the payload is one JSON header line then bytes, at most max_bytes in all.
  void add_api_frame(std::string resource, std::string action, std::size_t max_bytes, FrameHandler handler);
  // A device route. Payloads over max_bytes are dropped before parsing; when oversize_answer is set, the
  // device is told why on that kind (too_large).
  void add_device(protocol::TopicKind kind, std::size_t max_bytes, DeviceHandler handler,
                  std::optional<protocol::TopicKind> oversize_answer = std::nullopt);
  // A device request answered on answer_kind (the device's own topic, or an allowed Response Topic).
  void add_device_request(protocol::TopicKind kind, protocol::TopicKind answer_kind, std::size_t max_bytes,
                          DeviceRequestHandler handler);
  // The oversize handler of an already registered device route (run inside the one try/catch).
  void set_oversize_handler(protocol::TopicKind kind, OversizeHandler handler);
  void set_device_hook(DeviceHook hook) { device_hook_ = std::move(hook); }
  // Where API requests are measured: dispatch_api_requests_total{route,outcome} and
  // dispatch_api_request_duration_seconds{route} (route: "resource/action" of a registered route, else
  // "unknown"; outcome: "ok" or the error code). Unset: nothing is measured. Must outlive the router.
  void set_metrics(metrics::Registry* registry);

  // Routes one message. Never throws.
  void dispatch(const InboundMessage& m);

  // The subscriptions that reach every route.
  std::vector<std::string> subscriptions() const { return topics_.subscriptions(); }

  const RouterCounters& counters() const { return counters_; }

 private:
  struct ApiRoute {
    ApiHandler json;
    FrameHandler frame;
    std::size_t frame_max_bytes = 0;
  };
  struct DeviceRoute {
    std::size_t max_bytes = 0;
    DeviceHandler consume;
    DeviceRequestHandler request;
    std::optional<protocol::TopicKind> answer_kind;  // request routes; oversize answers of consume routes
    OversizeHandler oversize;                        // when set, replaces the oversize answer
  };

  void dispatch_api(const protocol::ParsedTopic& t, const InboundMessage& m);
  void dispatch_device(const protocol::ParsedTopic& t, const InboundMessage& m);
  // Runs handler inside the one try/catch; a throw becomes internal.
  template <class F>
  core::Result<nlohmann::json> guarded(std::string_view what, F&& handler);
  // Reply topic for an API request: Response Topic, else a usable reply_to from fields (a JSON object).
  std::optional<std::string> api_reply_topic(const InboundMessage& m, const nlohmann::json* fields,
                                             std::string_view resource, std::string_view action);
  void answer_api(const std::string& topic, const Correlation& c, const core::Result<nlohmann::json>& r);
  void measure_api(const std::string& route, const core::Result<nlohmann::json>& r,
                   std::chrono::steady_clock::time_point started);

  const protocol::Topics& topics_;
  Publisher& publisher_;
  RouterLimits limits_;
  DeviceAnswers device_answers_;
  std::map<std::pair<std::string, std::string>, ApiRoute> api_routes_;
  std::map<protocol::TopicKind, DeviceRoute> device_routes_;
  DeviceHook device_hook_;
  RouterCounters counters_;
  metrics::Registry* metrics_ = nullptr;
};

}  // namespace dispatch::service
