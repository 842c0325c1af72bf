// Connect options shared by MqttLink (the service) and MqttClient (tools and tests), so that both speak
// the same MQTT version, session and TLS settings. Only files that already include Paho include this.
#pragma once

#include <mqtt/connect_options.h>
#include <mqtt/ssl_options.h>

#include <chrono>
#include <string>

#include "service/mqtt/broker_uri.h"

namespace dispatch::service {

// Fills b from o (LinkOptions or ClientOptions: keepalive_s, mqtt_version, clean_start,
// session_expiry_s, username, password, uri, ca_file, cert_file, key_file, tls_verify_hostname): MQTT 5
// with clean start and session expiry, or 3.1.1 with clean session; credentials; TLS with server
// certificate checking (chain to ca_file, and — unless tls_verify_hostname is false — the certificate
// names the host of uri: Paho's `verify`) and an optional client certificate. Automatic reconnect backs off
// from 1 s to max_retry. The caller passes b.finalize() straight to connect(): copies of connect_options lose
// properties (paho.mqtt.cpp #445).
template <class Options>
void apply_connect_options(mqtt::connect_options_builder& b, const Options& o,
                           std::chrono::seconds max_retry) {
  b.keep_alive_interval(std::chrono::seconds(o.keepalive_s))
      .automatic_reconnect(std::chrono::seconds(1), max_retry);
  if (o.mqtt_version == 5) {
    b.mqtt_version(MQTTVERSION_5).clean_start(o.clean_start);
    if (o.session_expiry_s > 0) b.properties({{mqtt::property::SESSION_EXPIRY_INTERVAL, o.session_expiry_s}});
  } else {
    b.mqtt_version(MQTTVERSION_3_1_1).clean_session(o.clean_start);
  }
  if (!o.username.empty()) b.user_name(o.username);
  if (!o.password.empty()) b.password(o.password);
  if (is_tls_uri(o.uri)) {
    auto ssl = mqtt::ssl_options_builder();
    if (!o.ca_file.empty()) ssl.trust_store(o.ca_file);
    if (!o.cert_file.empty()) ssl.key_store(o.cert_file);
    if (!o.key_file.empty()) ssl.private_key(o.key_file);
    ssl.enable_server_cert_auth(true);
    ssl.verify(o.tls_verify_hostname);
    b.ssl(ssl.finalize());
  }
}

}  // namespace dispatch::service
