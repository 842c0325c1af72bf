#include "service/ops.h"

namespace dispatch::service {

http::HttpReply ops_answer(const http::HttpRequest& request, const OpsProbes& probes) {
  http::HttpReply reply;
  reply.content_type = "text/plain; charset=utf-8";
  const bool known = request.path == "/metrics" || request.path == "/healthz" || request.path == "/readyz";
  if (!known) {
    reply.status = 404;
    reply.body = "not found; try /metrics, /healthz or /readyz\n";
    return reply;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    reply.status = 405;
    reply.headers.emplace_back("Allow", "GET, HEAD");
    reply.body = "method not allowed\n";
    return reply;
  }
  if (request.path == "/metrics") {
    reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
    reply.body = probes.metrics();
    return reply;
  }
  if (request.path == "/healthz") {
    reply.body = "ok\n";
    return reply;
  }
  const std::vector<std::string> reasons = probes.not_ready();
  if (reasons.empty()) {
    reply.body = "ready\n";
    return reply;
  }
  reply.status = 503;
  for (const auto& r : reasons) reply.body += r + "\n";
  return reply;
}

}  // namespace dispatch::service
