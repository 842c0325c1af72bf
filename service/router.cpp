#include "service/router.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/errors.h"
#include "protocol/frame.h"
#include "protocol/json_request.h"
#include "service/logging.h"

namespace dispatch::service {

using core::ErrorCode;
using core::make_error;
using protocol::TopicKind;

namespace {

// A reply_to from an MQTT 3.1.1 payload is used only if it is a plain topic we may publish to.
bool usable_reply_topic(std::string_view t) {
  if (t.empty() || t.size() > 1024) return false;
  for (unsigned char c : t) {
    if (c == '+' || c == '#' || c < 0x20 || c == 0x7f) return false;
  }
  return t.front() != '$';
}

const std::string* string_field(const nlohmann::json* fields, const char* name) {
  if (fields == nullptr || !fields->is_object()) return nullptr;
  auto it = fields->find(name);
  if (it == fields->end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}

// The answer document with the correlation_id echoed, or the error in its wire form.
std::string answer_payload(const Correlation& c, const core::Result<nlohmann::json>& result) {
  if (!result) return protocol::error_payload(wire_error(result.error()), c.id);
  nlohmann::json out = *result;
  if (c.id) out["correlation_id"] = *c.id;
  return protocol::dump_json(out);
}

// The answer on topic, with the Correlation Data echoed.
OutMessage answer_message(std::string topic, int qos, const Correlation& c, std::string payload) {
  OutMessage msg;
  msg.topic = std::move(topic);
  msg.qos = qos;
  msg.payload = std::move(payload);
  if (c.data) {
    msg.correlation_data = *c.data;
    msg.has_correlation_data = true;
  }
  return msg;
}

// An upper bound of the MQTT 5 PUBLISH packet that carries m: fixed header (≤ 5), topic (2 + n), packet
// id (2), properties (length ≤ 4, Correlation Data 3 + n, Response Topic 3 + n, Message Expiry 5) and the
// payload. Over-estimating by a few bytes only makes the check stricter.
std::size_t packet_bytes(const OutMessage& m) {
  return 5 + 2 + m.topic.size() + 2 + 4 + 3 + m.correlation_data.size() + 3 + m.response_topic.size() + 5 +
         m.payload.size();
}

// An answer that would not fit the broker's Maximum Packet Size makes the broker drop our connection (and
// Paho resend it forever): it becomes a too_large error, which always fits, naming the way out.
void fit_packet(OutMessage& msg, const Correlation& c, std::size_t max_packet) {
  if (max_packet == 0) return;
  const std::size_t n = packet_bytes(msg);
  if (n <= max_packet) return;
  log_limited(spdlog::level::warn, "answer.too_large", {{"correlation_id", c.id.value_or("")}},
              "an answer on {} of {} bytes exceeds the broker's maximum packet size of {} bytes: answered "
              "too_large",
              msg.topic, n, max_packet);
  msg.payload = protocol::error_payload(
      core::make_error(
          ErrorCode::too_large,
          fmt::format("the answer ({} bytes) exceeds the broker's maximum packet size ({} bytes): ask "
                      "for less, e.g. a smaller 'limit' and the next page with 'after'",
                      n, max_packet)),
      c.id);
}

bool logged_error(const core::Error& e) {
  return e.code == ErrorCode::internal || e.code == ErrorCode::unavailable;
}

}  // namespace

Correlation correlation_of(const InboundMessage& m, const nlohmann::json* fields) {
  Correlation c;
  if (m.has_correlation_data) c.data = m.correlation_data;
  if (const std::string* id = string_field(fields, "correlation_id")) c.id = *id;
  return c;
}

core::Error wire_error(const core::Error& e) {
  // The detail of these two is about our insides (SQLite's text, a file path): it stays in the log.
  if (e.code == ErrorCode::internal) return make_error(ErrorCode::internal, "internal error");
  if (e.code == ErrorCode::unavailable) {
    core::Error out = make_error(ErrorCode::unavailable, "service temporarily unavailable; retry later");
    out.retry_after_s = e.retry_after_s;
    return out;
  }
  return e;
}

Router::Router(const protocol::Topics& topics, Publisher& publisher, RouterLimits limits)
    : topics_(topics),
      publisher_(publisher),
      limits_(limits),
      device_answers_(topics, publisher, limits.device_qos) {}

void Router::add_api(std::string resource, std::string action, ApiHandler handler) {
  ApiRoute& r = api_routes_[{std::move(resource), std::move(action)}];
  r = ApiRoute{};
  r.json = std::move(handler);
}

void Router::add_api_frame(std::string resource, std::string action, std::size_t max_bytes,
                           FrameHandler handler) {
  ApiRoute& r = api_routes_[{std::move(resource), std::move(action)}];
  r = ApiRoute{};
  r.frame = std::move(handler);
  r.frame_max_bytes = max_bytes;
}

void Router::add_device(TopicKind kind, std::size_t max_bytes, DeviceHandler handler,
                        std::optional<TopicKind> oversize_answer) {
  DeviceRoute r;
  r.max_bytes = max_bytes;
  r.consume = std::move(handler);
  r.answer_kind = oversize_answer;
  device_routes_[kind] = std::move(r);
}

void Router::add_device_request(TopicKind kind, TopicKind answer_kind, std::size_t max_bytes,
                                DeviceRequestHandler handler) {
  DeviceRoute r;
  r.max_bytes = max_bytes;
  r.request = std::move(handler);
  r.answer_kind = answer_kind;
  device_routes_[kind] = std::move(r);
}

void Router::set_oversize_handler(TopicKind kind, OversizeHandler handler) {
  auto it = device_routes_.find(kind);
  if (it != device_routes_.end()) it->second.oversize = std::move(handler);
}

template <class F>
core::Result<nlohmann::json> Router::guarded(std::string_view what, F&& handler) {
  try {
    return handler();
  } catch (const std::exception& e) {
    // Handlers return errors as values; this is the last line so that a bug never kills the service.
    ++counters_.handler_failures;
    log_limited(spdlog::level::err, "handler.threw", {}, "{} failed unexpectedly: {}", what, e.what());
  } catch (...) {
    ++counters_.handler_failures;
    log_limited(spdlog::level::err, "handler.threw", {}, "{} failed unexpectedly", what);
  }
  return make_error(ErrorCode::internal, "handler threw");
}

void Router::dispatch(const InboundMessage& m) {
  auto t = topics_.parse(m.topic);
  if (!t) {
    ++counters_.invalid_topics;
    spdlog::debug("dropping a message on an unknown topic");
    return;
  }
  ++counters_.inbound[static_cast<std::size_t>(t->kind)];
  if (t->kind == TopicKind::api) {
    dispatch_api(*t, m);
    return;
  }
  dispatch_device(*t, m);
}

std::optional<std::string> Router::api_reply_topic(const InboundMessage& m, const nlohmann::json* fields,
                                                   std::string_view resource, std::string_view action) {
  std::string topic = m.response_topic;
  if (topic.empty()) {
    // MQTT 3.1.1 clients name the answer topic in the payload.
    if (const std::string* reply_to = string_field(fields, "reply_to");
        reply_to && usable_reply_topic(*reply_to))
      topic = *reply_to;
  }
  if (topic.empty()) {
    ++counters_.unanswerable_requests;
    log_limited(spdlog::level::warn, "api.unanswerable", {},
                "API request on {}/{} has no Response Topic and no usable reply_to: nobody to answer",
                resource, action);
    return std::nullopt;
  }
  if (topics_.in_reserved_namespace(topic)) {
    ++counters_.unanswerable_requests;
    log_limited(spdlog::level::warn, "api.reserved_reply_topic", {},
                "API request on {}/{} asks for its answer on a device, API or event topic: refused", resource,
                action);
    return std::nullopt;
  }
  return topic;
}

void Router::dispatch_api(const protocol::ParsedTopic& t, const InboundMessage& m) {
  const auto started = std::chrono::steady_clock::now();
  auto route = api_routes_.find({t.resource, t.action});
  const bool frame_route = route != api_routes_.end() && route->second.frame;
  const std::string what = fmt::format("API {}/{}", t.resource, t.action);
  // The metric label: only registered routes, so a client cannot grow the label set.
  const std::string route_label =
      route != api_routes_.end() ? fmt::format("{}/{}", t.resource, t.action) : std::string("unknown");
  auto answer = [&](const std::string& topic, const Correlation& c, const core::Result<nlohmann::json>& r) {
    answer_api(topic, c, r);
    measure_api(route_label, r, started);
  };

  if (frame_route) {
    // One JSON header line (with reply_to / correlation_id for MQTT 3.1.1 clients), then the bytes.
    const std::size_t limit = route->second.frame_max_bytes;
    auto frame =
        m.payload.size() > limit
            ? core::Result<protocol::Frame>(make_error(
                  ErrorCode::too_large, fmt::format("upload frame of {} bytes exceeds the limit of {} bytes",
                                                    m.payload.size(), limit)))
            : protocol::parse_frame(m.payload);
    const nlohmann::json* header = frame ? &frame->header : nullptr;
    auto topic = api_reply_topic(m, header, t.resource, t.action);
    if (!topic) return;
    const Correlation c = correlation_of(m, header);
    if (!frame) {
      answer(*topic, c, frame.error());
      return;
    }
    answer(*topic, c, guarded(what, [&] { return route->second.frame(frame->header, frame->body); }));
    return;
  }

  // The size limit applies before any parsing (parse_json_object checks it first).
  protocol::JsonLimits limits;
  limits.max_bytes = limits_.api_max_bytes;
  limits.max_depth = limits_.api_max_depth;
  auto body = protocol::parse_json_object(m.payload, limits);
  const nlohmann::json* fields = body ? &*body : nullptr;
  auto topic = api_reply_topic(m, fields, t.resource, t.action);
  if (!topic) return;
  const Correlation c = correlation_of(m, fields);
  if (!body) {
    answer(*topic, c, body.error());
    return;
  }
  if (route == api_routes_.end()) {
    answer(*topic, c,
           make_error(ErrorCode::not_found, fmt::format("unknown API action {}/{}", t.resource, t.action)));
    return;
  }
  answer(*topic, c, guarded(what, [&] { return route->second.json(*body); }));
}

void Router::dispatch_device(const protocol::ParsedTopic& t, const InboundMessage& m) {
  if (!t.valid) {
    // There is no valid device to answer: count and drop (the topic never reaches SQL).
    ++counters_.invalid_topics;
    log_limited(spdlog::level::warn, "device.invalid_hardware_id", {{"hardware_id", t.hardware_id}},
                "dropping a message on {} with an invalid hardware id", protocol::to_string(t.kind));
    return;
  }
  auto route = device_routes_.find(t.kind);
  if (route == device_routes_.end()) {
    ++counters_.invalid_topics;
    return;
  }
  const DeviceRoute& r = route->second;
  const std::string& hw = t.hardware_id;
  if (m.payload.size() > r.max_bytes) {
    ++counters_.oversize_device_messages;
    log_limited(spdlog::level::warn, "device.oversize", {{"hardware_id", hw}},
                "dropping a {}-byte message on {}: over the limit of {} bytes (oversize device messages "
                "dropped: {})",
                m.payload.size(), protocol::to_string(t.kind), r.max_bytes,
                counters_.oversize_device_messages);
    if (r.oversize) {
      (void)guarded(fmt::format("oversize {} from {}", protocol::to_string(t.kind), hw),
                    [&]() -> core::Result<nlohmann::json> {
                      r.oversize(hw, m, r.max_bytes);
                      return nlohmann::json();
                    });
    } else if (r.answer_kind) {
      // The device expects an answer: say why there is none.
      device_answers_.answer(
          *r.answer_kind, hw, m, correlation_of(m, nullptr),
          make_error(ErrorCode::too_large, fmt::format("message of {} bytes exceeds the limit of {} bytes",
                                                       m.payload.size(), r.max_bytes)));
    }
    return;
  }
  const std::string what = fmt::format("{} from {}", protocol::to_string(t.kind), hw);
  if (r.consume) {
    (void)guarded(what, [&]() -> core::Result<nlohmann::json> {
      if (device_hook_) device_hook_(t.kind, hw);
      r.consume(hw, m);
      return nlohmann::json();
    });
    return;
  }
  std::optional<nlohmann::json> body;
  auto result = guarded(what, [&]() -> core::Result<nlohmann::json> {
    if (device_hook_) device_hook_(t.kind, hw);
    protocol::JsonLimits limits;
    limits.max_bytes = r.max_bytes;
    auto parsed = protocol::parse_json_object(
        m.payload.empty() ? std::string_view("{}") : std::string_view(m.payload), limits);
    if (!parsed) return parsed.error();
    body = std::move(*parsed);
    return r.request(hw, *body);
  });
  device_answers_.answer(*r.answer_kind, hw, m, correlation_of(m, body ? &*body : nullptr), result);
}

void Router::answer_api(const std::string& topic, const Correlation& c,
                        const core::Result<nlohmann::json>& r) {
  if (!r && logged_error(r.error()))
    log_limited(spdlog::level::err, "api.answer_error", {{"correlation_id", c.id.value_or("")}},
                "answering {} with {}: {}", topic, core::to_string(r.error().code), r.error().message);
  OutMessage msg = answer_message(topic, 1, c, answer_payload(c, r));
  fit_packet(msg, c, publisher_.max_packet_bytes());
  publisher_.publish(std::move(msg));
}

namespace {
constexpr const char* k_api_requests = "dispatch_api_requests_total";
constexpr const char* k_api_requests_help = "Platform API requests answered, by route and outcome";
constexpr const char* k_api_duration = "dispatch_api_request_duration_seconds";
constexpr const char* k_api_duration_help =
    "Time to handle one platform API request in the service loop (parse, handler, answer; without "
    "queueing and the batch commit)";
}  // namespace

void Router::set_metrics(metrics::Registry* registry) {
  metrics_ = registry;
  if (!metrics_) return;
  metrics_->describe(k_api_requests, k_api_requests_help, metrics::Registry::Type::counter);
  metrics_->describe(k_api_duration, k_api_duration_help, metrics::Registry::Type::histogram,
                     metrics::latency_buckets());
}

void Router::measure_api(const std::string& route, const core::Result<nlohmann::json>& r,
                         std::chrono::steady_clock::time_point started) {
  if (!metrics_) return;
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
  const std::string outcome = r ? std::string("ok") : std::string(core::to_string(r.error().code));
  metrics_->counter(k_api_requests, k_api_requests_help, {{"route", route}, {"outcome", outcome}}).inc();
  metrics_->histogram(k_api_duration, k_api_duration_help, metrics::latency_buckets(), {{"route", route}})
      .observe(took.count());
}

void DeviceAnswers::answer(TopicKind kind, const std::string& hw, const InboundMessage& request,
                           const Correlation& c, const core::Result<nlohmann::json>& r) {
  publish(kind, hw, request, c, answer_payload(c, r), r ? nullptr : &r.error());
}

void DeviceAnswers::answer_frame(TopicKind kind, const std::string& hw, const InboundMessage& request,
                                 const Correlation& c, const core::Result<protocol::Frame>& r) {
  nlohmann::json header = r ? r->header : protocol::error_json(wire_error(r.error()));
  if (c.id) header["correlation_id"] = *c.id;
  publish(kind, hw, request, c, protocol::encode_frame(header, r ? r->body : std::string_view()),
          r ? nullptr : &r.error());
}

void DeviceAnswers::publish(TopicKind kind, const std::string& hw, const InboundMessage& request,
                            const Correlation& c, std::string payload, const core::Error* error) {
  auto own = topics_.device(kind, hw);
  if (!own) return;  // hw was validated by the router; unreachable in practice
  std::string topic = std::move(*own);
  if (!request.response_topic.empty() && topics_.response_topic_allowed(request.response_topic, kind, hw))
    topic = request.response_topic;
  if (error && logged_error(*error))
    log_limited(spdlog::level::err, "device.answer_error",
                {{"hardware_id", hw}, {"correlation_id", c.id.value_or("")}}, "answering on {} with {}: {}",
                protocol::to_string(kind), core::to_string(error->code), error->message);
  OutMessage msg = answer_message(std::move(topic), qos_, c, std::move(payload));
  fit_packet(msg, c, publisher_.max_packet_bytes());
  publisher_.publish(std::move(msg));
}

}  // namespace dispatch::service
