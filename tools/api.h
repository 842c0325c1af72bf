// ApiClient: the platform API of PROTOCOL §3 as seen by an operator tool. One MQTT connection, one call
// per request, and the three ways a call can end that a tool must tell apart: an answer, the service's
// error answer, or nobody answering (broker or service unreachable).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "protocol/core/result.h"
#include "protocol/topics.h"
#include "service/mqtt/mqtt_client.h"

namespace dispatch::tools {

// The MQTT library's client and its values, by their short names in the tools.
using service::ClientOptions;
using service::InboundMessage;
using service::MqttClient;

// Process exit codes shared by dispatchctl and dispatch-sim.
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_failed = 1;       // the service answered with an error, or the work failed
inline constexpr int k_exit_usage = 2;        // bad command line or unreadable/invalid input file
inline constexpr int k_exit_unreachable = 3;  // broker or dispatchd did not answer

// Why a call did not give an answer object.
struct CallError {
  core::Error error;
  // True when nothing answered (connect failed, or no answer in time); false for the service's error.
  bool unreachable = false;

  int exit_code() const { return unreachable ? k_exit_unreachable : k_exit_failed; }
  // "error: <code>: <message>" for service errors; "error: <message>" when unreachable.
  std::string text() const;
};

class CallResult {
 public:
  CallResult(nlohmann::json answer) : answer_(std::move(answer)) {}  // NOLINT(google-explicit-constructor)
  CallResult(CallError error) : error_(std::move(error)) {}          // NOLINT(google-explicit-constructor)
  bool ok() const { return answer_.has_value(); }
  explicit operator bool() const { return ok(); }
  const nlohmann::json& value() const { return *answer_; }
  const nlohmann::json* operator->() const { return &*answer_; }
  const nlohmann::json& operator*() const { return *answer_; }
  const CallError& error() const { return *error_; }

 private:
  std::optional<nlohmann::json> answer_;
  std::optional<CallError> error_;
};

class ApiClient {
 public:
  // timeout_s bounds the wait for each answer.
  ApiClient(ClientOptions options, int timeout_s, protocol::TopicRoots roots = {});

  // Connects once; later calls reuse the connection. unreachable error when the broker refuses or is
  // silent ("cannot reach the broker at <uri>: …").
  std::optional<CallError> connect();

  // Publishes body to <api root>/<resource>/<action> and waits for the answer. An answer object holding
  // "error" becomes a service CallError with its code and message; an answer that is not a JSON object
  // is a service CallError with code internal; no answer within the timeout is unreachable:
  // "cannot reach dispatchd at <uri>: no answer within <n> s (is the service running?)".
  CallResult call(std::string_view resource, std::string_view action, const nlohmann::json& body);

  // The same for a raw payload (packages/upload frames). Needs MQTT 5 (frames cannot carry reply_to).
  CallResult call_raw(std::string_view resource, std::string_view action, const std::string& payload);

  MqttClient& mqtt() { return *client_; }
  const protocol::Topics& topics() const { return topics_; }
  const std::string& uri() const { return uri_; }
  int timeout_s() const { return timeout_s_; }

 private:
  CallResult interpret(core::Result<std::string> raw) const;

  std::string uri_;
  int timeout_s_;
  protocol::Topics topics_;
  std::unique_ptr<MqttClient> client_;
  bool connected_ = false;
};

// Reads an answer's error object, if it is one.
std::optional<core::Error> error_of(const nlohmann::json& answer);

}  // namespace dispatch::tools
