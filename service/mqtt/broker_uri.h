// The broker URI of the options (`tcp://host:port`, `mqtt://…`, `ssl://…`, `mqtts://…`), shared by
// MqttLink (libmosquitto) and MqttClient (Paho); no MQTT library's headers here.
#pragma once

#include <optional>
#include <string>

namespace dispatch::service {

// True for the URI schemes that mean TLS (ssl://, mqtts://).
inline bool is_tls_uri(const std::string& uri) {
  return uri.rfind("ssl://", 0) == 0 || uri.rfind("mqtts://", 0) == 0;
}

struct BrokerAddress {
  std::string host;
  int port = 0;
  bool tls = false;
};

// Splits a broker URI: scheme tcp, mqtt (plain) or ssl, mqtts (TLS); the port defaults to 1883 (plain) or
// 8883 (TLS); an IPv6 host is written in brackets ([::1]:1883). nullopt for another scheme, an empty host
// or a port outside 1..65535.
std::optional<BrokerAddress> parse_broker_uri(const std::string& uri);

// What to check when a connection to a TLS broker fails ("" for plain MQTT): the client's error text does
// not say whether the chain or the host name was refused.
template <class Options>
std::string tls_failure_hint(const Options& o) {
  if (!is_tls_uri(o.uri)) return {};
  std::string hint = " (TLS: the broker's certificate must chain to " +
                     (o.ca_file.empty() ? std::string("the system's CA certificates") : o.ca_file);
  if (o.tls_verify_hostname) hint += " and name the host in " + o.uri + ": host name verification is on";
  return hint + ")";
}

}  // namespace dispatch::service
