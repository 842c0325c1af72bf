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
//   GET /console/api/packages          packages/list;
//   POST /console/api/campaigns/<id>/(pause|resume|terminate)
//                                      only with `Authorization: Bearer <http.console_token>` (compared in
//                                      constant time); 401 without or with a wrong one, 403 when no token
//                                      is configured (the console is read-only).
// The campaign page polls its snapshot once a second (no server-sent events yet: the HTTP listener
// answers one reply per request). Every answer carries `Content-Security-Policy: default-src 'self'`;
// errors are JSON {"error": code, "message": text} with the status of the code.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>

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

struct ConsoleBackend {
  // One platform API action (App::console_call).
  std::function<core::Result<nlohmann::json>(const std::string& resource, const std::string& action,
                                             const nlohmann::json& body)>
      call;
  std::string token;  // http.console_token; empty: read-only
};

// True when the path belongs to the console (/console, /console/...).
bool is_console_path(std::string_view path);

http::HttpReply console_answer(const http::HttpRequest& request, const ConsoleBackend& backend);

}  // namespace dispatch::service
