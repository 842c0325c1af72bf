// The daemon: opens the database, connects the MQTT link and runs the service loop until SIGTERM/SIGINT.
#pragma once

#include "service/config.h"

namespace dispatch::service {

// Runs dispatchd; returns the process exit code (0 after a clean stop, 1 on a fatal start-up error).
int run_daemon(const Config& config);

// Every sample name GET /metrics can contain, one per line (histograms as _bucket, _sum and _count), from
// a service built on an in-memory database: what dashboards and alerts may name. Returns the exit code.
int print_metrics(const Config& config);

}  // namespace dispatch::service
