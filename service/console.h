// The operators' web console (issue #17), served under /console/ on http.ops_listen and answered by the
// service loop like /metrics:
//   GET /console/                      index.html; /console/<file> the other static files, built into the
//                                      binary from service/console/ (no build step, no node at run time);
//   GET /console/api/fleet             devices (at most k_console_fleet_max, in hardware id order) with
//                                      tags, reported version, last seen; ?tag= and ?version= filter;
//                                      "versions": {tag: {version: count}} over the devices shown;
//   GET /console/api/commands          recent commands (commands/list's page: ?limit=, ?after=) with
//                                      per-state counts;
//   GET /console/api/commands/<id>     one command and its deliveries (commands/get: output bounded by
//                                      the store's trim), paged here with ?offset= and ?limit= (≤ 500);
//   GET /console/api/campaigns         campaigns/list;
//   GET /console/api/campaigns/<id>    campaigns/get: the document the retained campaign event carries;
//   GET /console/api/campaigns/<id>/events
//                                      text/event-stream (server-sent events): `event: campaign` with the
//                                      campaigns/get document at once, then whenever it changed, at most
//                                      once a second per stream (ConsoleStreams); at most
//                                      http.console_max_streams open streams, 503 past it;
//   GET /console/api/packages          packages/list;
//   POST /console/api/campaigns/<id>/(pause|resume|terminate)
//   POST /console/api/packages         packages/create of an internal package (JSON body);
//   POST /console/api/packages/<id>/upload?offset=N&last=0|1
//                                      one chunk (the raw body, at most provisioning.max_chunk_bytes) of
//                                      packages/upload, the MQTT API's chunked, resumable upload path;
//                                      writes: only with `Authorization: Bearer <http.console_token>`
//                                      (compared in constant time); 401 without or with a wrong one, 403
//                                      when no token is configured (the console is read-only).
// Every answer carries `Content-Security-Policy: default-src 'self'`; errors are JSON
// {"error": code, "message": text} with the status of the code.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/result.h"
#include "service/http/http_exchange.h"

namespace dispatch::service {

// One static file of the console, embedded at build time (the generated console_assets.cpp).
struct ConsoleAsset {
  std::string_view name;  // "index.html", "app.js", ...
  std::string_view content;
};
std::span<const ConsoleAsset> console_assets();

// The most devices /console/api/fleet reads (it pages devices/list until then).
inline constexpr int k_console_fleet_max = 5000;

class ConsoleStreams;

struct ConsoleBackend {
  // One platform API action (App::console_call).
  std::function<core::Result<nlohmann::json>(const std::string& resource, const std::string& action,
                                             const nlohmann::json& body)>
      call;
  // packages/upload: one chunk (Provisioning::upload); absent: uploads answer 503.
  std::function<core::Result<nlohmann::json>(const nlohmann::json& header, std::string_view bytes)> upload;
  std::string token;                  // http.console_token; empty: read-only
  ConsoleStreams* streams = nullptr;  // the event streams; null: /events answers 503
};

// The live campaign pages' server-sent event streams. Owned and called by the loop thread only; the
// listener's worker writes what is offered (http::EventStream). Each stream is fed from campaigns/get,
// the document the retained campaign event carries (CampaignService::document), so the page shows what
// an MQTT subscriber sees.
class ConsoleStreams {
 public:
  using Clock = std::chrono::steady_clock;
  // At most one update per stream per `min_interval`.
  explicit ConsoleStreams(std::size_t max_streams, Clock::duration min_interval = std::chrono::seconds(1));
  ~ConsoleStreams();  // closes every stream
  ConsoleStreams(const ConsoleStreams&) = delete;
  ConsoleStreams& operator=(const ConsoleStreams&) = delete;

  // Opens a stream of campaign `id` whose first event is the current document: 200 text/event-stream,
  // or the campaign's error (404 ...), or 503 with Retry-After when max_streams streams are open.
  http::HttpReply open(const std::string& id, const ConsoleBackend& b, Clock::time_point now);
  // Offers each open stream its campaign's document when it changed and its last update is at least
  // min_interval old; a campaign that is gone ends its stream with an `event: gone`. Drops the streams
  // that are over (client gone). Called from the loop's timer.
  void tick(const ConsoleBackend& b, Clock::time_point now);
  // Streams not over yet (as of the last open or tick).
  std::size_t open_count() const { return streams_.size(); }
  std::size_t max_streams() const { return max_; }

 private:
  struct Stream {
    std::string id;
    std::shared_ptr<http::EventStream> out;
    std::string last;  // the last document offered
    Clock::time_point last_at;
  };
  void prune();

  std::size_t max_;
  Clock::duration min_interval_;
  std::vector<Stream> streams_;
};

// True when the path belongs to the console (/console, /console/...).
bool is_console_path(std::string_view path);

http::HttpReply console_answer(const http::HttpRequest& request, const ConsoleBackend& backend);

}  // namespace dispatch::service
