// The operators' endpoints on http.ops_listen (PROTOCOL §6), answered by the service loop so that a stuck
// loop shows as a timeout (the ops listener's 503) rather than a cheerful 200:
//   GET /metrics  200, the Prometheus text format (version 0.0.4);
//   GET /healthz  200 "ok" (the loop is running: it answered);
//   GET /readyz   200 "ready" when the database answers a trivial query and the broker is connected,
//                 else 503 with one reason per line ("mqtt: disconnected (…)", "database: …");
//   HEAD is answered like GET (the listener sends no body); other methods on these paths 405 with
//   `Allow: GET, HEAD`; every other path 404, except /console and /console/... which the daemon hands
//   to console_answer (service/console.h) before this function.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "service/http/http_exchange.h"

namespace dispatch::service {

struct OpsProbes {
  std::function<std::string()> metrics;  // the /metrics body
  // Why the service is not ready; empty when it is.
  std::function<std::vector<std::string>()> not_ready;
};

// The name of the ops listener (HttpExchange::listener).
inline constexpr const char* k_ops_listener = "ops";

http::HttpReply ops_answer(const http::HttpRequest& request, const OpsProbes& probes);

}  // namespace dispatch::service
