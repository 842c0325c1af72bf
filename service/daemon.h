// The daemon: opens the database, connects the MQTT link and runs the service loop until SIGTERM/SIGINT.
#pragma once

#include <string>
#include <vector>

#include "service/config.h"
#include "service/mqtt/mqtt_link.h"

namespace dispatch::service {

// Runs dispatchd; returns the process exit code (0 after a clean stop, 1 on a fatal start-up error).
int run_daemon(const Config& config);

// How many device messages the service loop may take into its next batch, for the byte budget of the
// link's queue (mqtt.max_queued_bytes): each may add one answer to that queue, so the batch is the room
// left divided by the largest answer expected (the larger of MqttLink::recent_largest and
// answer_estimate_bytes), between 1 and max_batch; with no room, none — except 1 while `producer_waiting` (a
// the MQTT network thread waits to hand over a message; the same thread reads the broker's acknowledgements,
// so the link could not drain otherwise).
std::size_t device_message_allowance(const MqttLink& link, bool producer_waiting,
                                     std::size_t max_batch = 1000);

// Every sample name GET /metrics can contain, one per line (histograms as _bucket, _sum and _count), from
// a service built on an in-memory database: what dashboards and alerts may name. Returns the exit code.
int print_metrics(const Config& config);

// A connection URI fit for a log line: the password of "scheme://user:password@host" and the value of
// every "password=" parameter replaced by "***".
std::string redacted_url(const std::string& url);

// The filters dispatchd subscribes to: as given, or each as "$share/<group>/<filter>" when share_group
// is set (PROTOCOL §7: the broker hands each inbound message to one member of the group).
std::vector<std::string> subscription_filters(const std::vector<std::string>& filters,
                                              const std::string& share_group);
// The filters an earlier run under the same persistent session may still hold and this one must drop.
std::vector<std::string> stale_filters(const std::vector<std::string>& filters,
                                       const std::string& share_group);

}  // namespace dispatch::service
