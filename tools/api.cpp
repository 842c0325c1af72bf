#include "tools/api.h"

#include <fmt/format.h>

namespace dispatch::tools {

using core::ErrorCode;
using core::make_error;

std::string CallError::text() const {
  if (unreachable) return "error: " + error.message;
  return fmt::format("error: {}: {}", core::to_string(error.code), error.message);
}

std::optional<core::Error> error_of(const nlohmann::json& answer) {
  if (!answer.is_object() || !answer.contains("error")) return std::nullopt;
  const auto& e = answer["error"];
  core::Error err{ErrorCode::internal, "the service answered with an unreadable error", {}};
  if (!e.is_object()) return err;
  if (e.contains("code") && e["code"].is_string()) {
    err.code = core::error_code_from_string(e["code"].get<std::string>()).value_or(ErrorCode::internal);
  }
  if (e.contains("message") && e["message"].is_string()) err.message = e["message"].get<std::string>();
  if (e.contains("retry_after_s") && e["retry_after_s"].is_number_integer()) {
    err.retry_after_s = e["retry_after_s"].get<std::int64_t>();
  }
  return err;
}

ApiClient::ApiClient(ClientOptions options, int timeout_s, protocol::TopicRoots roots)
    : uri_(options.uri), timeout_s_(timeout_s), topics_(std::move(roots)) {
  client_ = std::make_unique<MqttClient>(std::move(options));
}

std::optional<CallError> ApiClient::connect() {
  if (connected_) return std::nullopt;
  auto st = client_->connect(timeout_s_ * 1000);
  if (!st) {
    return CallError{make_error(ErrorCode::unavailable,
                                fmt::format("cannot reach the broker at {}: {}", uri_, st.error().message)),
                     true};
  }
  connected_ = true;
  return std::nullopt;
}

CallResult ApiClient::interpret(core::Result<std::string> raw) const {
  if (!raw) {
    // MqttClient reports a missing answer (and a failed publish) as unavailable: nobody is listening.
    return CallError{
        make_error(ErrorCode::unavailable,
                   fmt::format("cannot reach dispatchd at {}: no answer within {} s (is the service "
                               "running?)",
                               uri_, timeout_s_)),
        true};
  }
  auto j = nlohmann::json::parse(*raw, nullptr, false);
  if (!j.is_object()) {
    return CallError{make_error(ErrorCode::internal, "the service's answer is not a JSON object"), false};
  }
  if (auto err = error_of(j)) return CallError{*err, false};
  return j;
}

CallResult ApiClient::call(std::string_view resource, std::string_view action, const nlohmann::json& body) {
  if (auto err = connect()) return *err;
  return interpret(client_->request(topics_.api(resource, action), body.dump(), timeout_s_ * 1000));
}

CallResult ApiClient::call_raw(std::string_view resource, std::string_view action,
                               const std::string& payload) {
  if (client_->mqtt_version() != 5) {
    return CallError{
        make_error(ErrorCode::bad_request,
                   fmt::format("{}/{} sends binary frames and needs --mqtt-version 5", resource, action)),
        false};
  }
  if (auto err = connect()) return *err;
  return interpret(client_->request(topics_.api(resource, action), payload, timeout_s_ * 1000));
}

}  // namespace dispatch::tools
