// AgentApi: the device-facing HTTP API of esthesis CORE's agent service (PROTOCOL §6,
// docs/esthesis-agents.md), so that unmodified esthesis agents register and update their firmware.
// It only translates: `find` and `find/by-id` go through the same device query as MQTT
// (Provisioning::query: one rate window per device, the token rules, selection, a download token),
// `download` through Downloads' HTTP streams, `register` through DevicesModule::register_device.
// Field names and status codes are esthesis's. Called only from the service loop thread, except
// prepare(), which the listener's worker threads call.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "protocol/core/result.h"
#include "service/config.h"
#include "service/http/http_exchange.h"

namespace dispatch::service {

class DevicesModule;
class Provisioning;

class AgentApi {
 public:
  AgentApi(const Config& config, DevicesModule& devices, Provisioning& provisioning);

  // bad_request when registration.mode is open_with_secret and registration.secret is empty.
  core::Status start() const;

  // The agent listener's HttpServerOptions::prepare: runs on an HTTP worker thread, never on the loop,
  // and reads only the (immutable) config. For a registration that passes every check needing no
  // service state (the mode, the JSON, the hardware id, the secret) it makes the RSA 2048 key pair
  // (50-300 ms of CPU) and attaches it to the request as a core::Result<core::GeneratedKeyPair>, so the
  // loop only checks the device and stores the public half. A key made for a registration the loop
  // then refuses (409, or 403 in mode `id`) is dropped unused; at most `worker_threads` keys are being
  // made at once. The private half is never stored or logged.
  static void prepare(const Config& config, http::HttpRequest& request);

  // Replies to give once the batch committed (durable before visible).
  using Answers = std::vector<std::pair<std::shared_ptr<http::ReplySlot>, http::HttpReply>>;

  // One request: its reply goes to `out` (a FileBody for a download). A download of a token that is
  // being streamed right now waits for that stream to end and is then answered by the token's state
  // (spent: 404; a Range resume: streamed), so of two concurrent first uses exactly one streams.
  void handle(const http::HttpExchange& exchange, Answers& out);
  // The listener reports what it wrote of a FileBody reply; the downloads waiting for it are answered.
  void on_streamed(const http::HttpStreamed& streamed, Answers& out);
  // A FileBody reply the listener never took (it gave up waiting): its stream is forgotten and the
  // downloads waiting for it are answered.
  void on_abandoned(const http::HttpReply& reply, Answers& out);

 private:
  http::HttpReply route(const http::HttpRequest& request);
  http::HttpReply find(const http::HttpRequest& request, bool by_id);
  http::HttpReply download(const http::HttpRequest& request);
  http::HttpReply register_agent(const http::HttpRequest& request);

  const Config& config_;
  DevicesModule& devices_;
  Provisioning& provisioning_;
  // Downloads waiting for the stream (by tag) of the same token to end.
  std::map<std::uint64_t, std::vector<http::HttpExchange>> waiting_;
};

}  // namespace dispatch::service
