#include "service/mqtt/broker_uri.h"

#include <charconv>

namespace dispatch::service {

std::optional<BrokerAddress> parse_broker_uri(const std::string& uri) {
  BrokerAddress a;
  const auto sep = uri.find("://");
  if (sep == std::string::npos) return std::nullopt;
  const std::string scheme = uri.substr(0, sep);
  if (scheme == "ssl" || scheme == "mqtts") {
    a.tls = true;
  } else if (scheme != "tcp" && scheme != "mqtt") {
    return std::nullopt;
  }
  std::string rest = uri.substr(sep + 3);
  if (auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) return std::nullopt;
    a.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return std::nullopt;
      port = rest.substr(close + 2);
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    a.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  } else {
    a.host = rest;
  }
  if (a.host.empty()) return std::nullopt;
  if (port.empty()) {
    a.port = a.tls ? 8883 : 1883;
  } else {
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), a.port);
    if (ec != std::errc() || end != port.data() + port.size() || a.port < 1 || a.port > 65535)
      return std::nullopt;
  }
  return a;
}

}  // namespace dispatch::service
