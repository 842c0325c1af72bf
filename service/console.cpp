#include "service/console.h"

#include <algorithm>
#include <map>

#include "protocol/core/secrets.h"

namespace dispatch::service {

namespace {

using nlohmann::json;

constexpr std::string_view k_prefix = "/console";
constexpr std::string_view k_api = "/console/api/";
constexpr int k_deliveries_page_max = 500;

std::string_view content_type_of(std::string_view name) {
  auto ends = [&](std::string_view s) {
    return name.size() >= s.size() && name.substr(name.size() - s.size()) == s;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

void secure(http::HttpReply& r) {
  r.headers.emplace_back("Content-Security-Policy", "default-src 'self'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cache-Control", "no-store");
}

http::HttpReply json_reply(int status, const json& j) {
  http::HttpReply r;
  r.status = status;
  r.content_type = "application/json";
  r.body = j.dump();
  secure(r);
  return r;
}

http::HttpReply error_reply(int status, std::string_view code, std::string message) {
  return json_reply(status, json{{"error", code}, {"message", std::move(message)}});
}

int status_of(core::ErrorCode c) {
  switch (c) {
    case core::ErrorCode::bad_request:
      return 400;
    case core::ErrorCode::not_found:
      return 404;
    case core::ErrorCode::conflict:
      return 409;
    case core::ErrorCode::unauthorized:
      return 401;
    case core::ErrorCode::token_invalid:
      return 401;
    case core::ErrorCode::rate_limited:
      return 429;
    case core::ErrorCode::too_large:
      return 413;
    case core::ErrorCode::unavailable:
      return 503;
    case core::ErrorCode::internal:
      return 500;
  }
  return 500;
}

http::HttpReply from_result(const core::Result<json>& r) {
  if (r) return json_reply(200, *r);
  // Like the MQTT API: unavailable and internal lose their detail (it may hold the database's text).
  const bool generic =
      r.error().code == core::ErrorCode::unavailable || r.error().code == core::ErrorCode::internal;
  return error_reply(status_of(r.error().code), core::to_string(r.error().code),
                     generic ? std::string("the service could not answer; see its log") : r.error().message);
}

// A non-negative integer query parameter, or `fallback`; nullopt when present but not a number.
std::optional<long> int_param(const http::HttpRequest& q, const std::string& key, long fallback, long max) {
  auto v = q.param(key);
  if (!v) return fallback;
  if (v->empty() || v->size() > 9 ||
      !std::all_of(v->begin(), v->end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::min(std::stol(*v), max);
}

http::HttpReply fleet(const http::HttpRequest& q, const ConsoleBackend& b) {
  const auto tag = q.param("tag");
  const auto version = q.param("version");
  json devices = json::array();
  json versions = json::object();
  std::optional<std::string> after;
  int read = 0;
  bool truncated = false;
  while (true) {
    json body{{"limit", 500}};
    if (tag && !tag->empty()) body["tag"] = *tag;
    if (after) body["after"] = *after;
    auto page = b.call("devices", "list", body);
    if (!page) return from_result(page);
    for (const auto& d : (*page)["devices"]) {
      if (read >= k_console_fleet_max) {
        truncated = true;
        break;
      }
      ++read;
      const json rv = d.value("reported_version", json());
      const std::string v = rv.is_string() ? rv.get<std::string>() : "";
      if (version && !version->empty() && v != *version) continue;
      for (const auto& t : d.value("tags", json::array())) {
        if (!t.is_string()) continue;
        json& per = versions[t.get<std::string>()];
        const std::string key = v.empty() ? "unknown" : v;
        per[key] = (per.contains(key) ? per[key].get<int>() : 0) + 1;
      }
      devices.push_back(json{{"hardware_id", d.value("hardware_id", json())},
                             {"tags", d.value("tags", json::array())},
                             {"reported_version", rv},
                             {"last_seen", d.value("last_seen", json())}});
    }
    if (truncated || !page->contains("next_after")) break;
    after = (*page)["next_after"].get<std::string>();
  }
  return json_reply(200, json{{"devices", devices},
                              {"count", devices.size()},
                              {"versions", versions},
                              {"truncated", truncated},
                              {"max_devices", k_console_fleet_max}});
}

http::HttpReply command(const std::string& id, const http::HttpRequest& q, const ConsoleBackend& b) {
  auto offset = int_param(q, "offset", 0, 1'000'000'000);
  auto limit = int_param(q, "limit", 100, k_deliveries_page_max);
  if (!offset || !limit)
    return error_reply(400, "bad_request", "offset and limit must be non-negative integers");
  auto r = b.call("commands", "get", json{{"command_id", id}});
  if (!r) return from_result(r);
  json& all = (*r)["devices"];
  const long total = all.is_array() ? static_cast<long>(all.size()) : 0;
  json page = json::array();
  for (long i = *offset; i < total && i < *offset + *limit; ++i) page.push_back(all[static_cast<size_t>(i)]);
  (*r)["devices"] = page;
  (*r)["devices_total"] = total;
  (*r)["offset"] = *offset;
  return json_reply(200, *r);
}

bool authorized(const http::HttpRequest& q, const std::string& token) {
  constexpr std::string_view bearer = "Bearer ";
  const std::string& h = q.authorization;
  if (h.size() <= bearer.size() || std::string_view(h).substr(0, bearer.size()) != bearer) return false;
  return core::constant_time_equal(std::string_view(h).substr(bearer.size()), token);
}

http::HttpReply api(const http::HttpRequest& q, const ConsoleBackend& b) {
  const std::string rest = q.path.substr(k_api.size());
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t slash = rest.find('/', start);
    parts.push_back(rest.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  for (const auto& p : parts)
    if (p.empty()) return error_reply(404, "not_found", "no such console resource: " + q.path);

  const bool campaign_action = parts.size() == 3 && parts[0] == "campaigns" &&
                               (parts[2] == "pause" || parts[2] == "resume" || parts[2] == "terminate");
  const bool package_create = parts.size() == 1 && parts[0] == "packages" && q.method == "POST";
  const bool package_upload = parts.size() == 3 && parts[0] == "packages" && parts[2] == "upload";
  if (campaign_action || package_create || package_upload) {
    if (q.method != "POST") {
      auto r = error_reply(405, "bad_request", "use POST");
      r.headers.emplace_back("Allow", "POST");
      return r;
    }
    if (b.token.empty())
      return error_reply(403, "unauthorized", "the console is read-only (http.console_token is not set)");
    if (!authorized(q, b.token)) {
      auto r = error_reply(401, "unauthorized",
                           "a console write needs Authorization: Bearer <http.console_token>");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    if (campaign_action) return from_result(b.call("campaigns", parts[2], json{{"id", parts[1]}}));
    if (package_create) {
      json body = json::parse(q.body, nullptr, false);
      if (body.is_discarded() || !body.is_object())
        return error_reply(400, "bad_request", "packages/create needs a JSON object body");
      return from_result(b.call("packages", "create", body));
    }
    auto offset = q.param("offset");
    auto last = q.param("last");
    if (!offset || offset->empty() || offset->size() > 15 ||
        !std::all_of(offset->begin(), offset->end(), [](char c) { return c >= '0' && c <= '9'; }))
      return error_reply(400, "bad_request", "upload needs ?offset=<byte offset of the chunk>");
    if (last && *last != "0" && *last != "1") return error_reply(400, "bad_request", "last must be 0 or 1");
    if (!b.upload) return error_reply(503, "unavailable", "uploads are not available");
    json header{{"id", parts[1]},
                {"offset", std::stoll(*offset)},
                {"length", q.body.size()},
                {"last", last && *last == "1"}};
    return from_result(b.upload(header, q.body));
  }
  if (parts.size() == 3 && parts[0] == "campaigns" && parts[2] == "events") {
    if (q.method != "GET" && q.method != "HEAD") {
      auto r = error_reply(405, "bad_request", "an event stream is GET");
      r.headers.emplace_back("Allow", "GET, HEAD");
      return r;
    }
    if (b.streams == nullptr) return error_reply(503, "unavailable", "event streams are not available");
    return b.streams->open(parts[1], b, ConsoleStreams::Clock::now());
  }
  if (q.method != "GET" && q.method != "HEAD") {
    auto r = error_reply(405, "bad_request", "the console's reads are GET");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  if (parts.size() == 1 && parts[0] == "fleet") return fleet(q, b);
  if (parts.size() == 1 && parts[0] == "commands") {
    json body = json::object();
    auto limit = int_param(q, "limit", 50, 500);
    if (!limit) return error_reply(400, "bad_request", "limit must be a non-negative integer");
    if (*limit > 0) body["limit"] = *limit;
    if (auto a = q.param("after")) body["after"] = *a;
    return from_result(b.call("commands", "list", body));
  }
  if (parts.size() == 2 && parts[0] == "commands") return command(parts[1], q, b);
  if (parts.size() == 1 && parts[0] == "campaigns")
    return from_result(b.call("campaigns", "list", json::object()));
  if (parts.size() == 2 && parts[0] == "campaigns")
    return from_result(b.call("campaigns", "get", json{{"id", parts[1]}}));
  if (parts.size() == 1 && parts[0] == "packages")
    return from_result(b.call("packages", "list", json::object()));
  return error_reply(404, "not_found", "no such console resource: " + q.path);
}

std::string sse(std::string_view event, const std::string& data) {
  // A JSON dump has no raw newline, so one data line carries the whole document.
  return "event: " + std::string(event) + "\ndata: " + data + "\n\n";
}

}  // namespace

ConsoleStreams::ConsoleStreams(std::size_t max_streams, Clock::duration min_interval)
    : max_(max_streams), min_interval_(min_interval) {}

ConsoleStreams::~ConsoleStreams() {
  for (auto& s : streams_) s.out->close();
}

void ConsoleStreams::prune() {
  std::erase_if(streams_, [](const Stream& s) { return s.out->over(); });
}

http::HttpReply ConsoleStreams::open(const std::string& id, const ConsoleBackend& b, Clock::time_point now) {
  prune();
  if (streams_.size() >= max_) {
    auto r = error_reply(503, "unavailable",
                         "too many open event streams (http.console_max_streams = " + std::to_string(max_) +
                             "); close a campaign page or poll /console/api/campaigns/<id>");
    r.headers.emplace_back("Retry-After", "5");
    return r;
  }
  auto doc = b.call("campaigns", "get", json{{"id", id}});
  if (!doc) return from_result(doc);
  Stream s{id, std::make_shared<http::EventStream>(), doc->dump(), now};
  // retry: how long a browser waits before it reconnects a broken stream, milliseconds.
  s.out->offer("retry: 3000\n" + sse("campaign", s.last));
  http::HttpReply r;
  r.content_type = "text/event-stream";
  r.stream = s.out;
  secure(r);
  // A proxy such as nginx would otherwise buffer the stream.
  r.headers.emplace_back("X-Accel-Buffering", "no");
  streams_.push_back(std::move(s));
  return r;
}

void ConsoleStreams::tick(const ConsoleBackend& b, Clock::time_point now) {
  prune();
  for (auto& s : streams_) {
    if (now - s.last_at < min_interval_) continue;
    auto doc = b.call("campaigns", "get", json{{"id", s.id}});
    if (!doc) {
      if (doc.error().code == core::ErrorCode::not_found) {
        s.out->offer(sse("gone", json{{"error", "not_found"}, {"message", doc.error().message}}.dump()));
        s.out->close();
      }
      continue;  // unavailable: the next tick tries again
    }
    std::string text = doc->dump();
    if (text == s.last) continue;
    s.last = std::move(text);
    s.last_at = now;
    s.out->offer(sse("campaign", s.last));
  }
}

bool is_console_path(std::string_view path) {
  return path == k_prefix ||
         (path.size() > k_prefix.size() && path.substr(0, k_prefix.size() + 1) == "/console/");
}

http::HttpReply console_answer(const http::HttpRequest& request, const ConsoleBackend& backend) {
  // A document of an unexpected shape is a 500 for this request, never a dead loop.
  if (request.path.starts_with(k_api)) {
    try {
      return api(request, backend);
    } catch (const std::exception& e) {
      return error_reply(500, "internal", std::string("the console could not build its answer: ") + e.what());
    }
  }
  if (request.path == k_prefix) {
    http::HttpReply r;
    r.status = 301;
    r.headers.emplace_back("Location", "/console/");
    secure(r);
    return r;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    http::HttpReply r = error_reply(405, "bad_request", "static files are GET");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  std::string_view name = std::string_view(request.path).substr(k_prefix.size() + 1);
  if (name.empty()) name = "index.html";
  for (const auto& a : console_assets()) {
    if (a.name != name) continue;
    http::HttpReply r;
    r.content_type = std::string(content_type_of(name));
    r.body = std::string(a.content);
    secure(r);
    return r;
  }
  http::HttpReply r;
  r.status = 404;
  r.content_type = "text/plain; charset=utf-8";
  r.body = "not found\n";
  secure(r);
  return r;
}

}  // namespace dispatch::service
