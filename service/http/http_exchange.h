// The HTTP listener's hand-off to the service loop: what a request looks like to the loop, what the loop
// answers, and the report of a streamed file. No cpp-httplib types appear here, so the loop and
// event_queue.h never include httplib.h.
//
// One exchange: an HTTP worker thread builds an HttpExchange, pushes it onto the EventQueue and waits
// (bounded) for the loop to call `reply->answer(...)`. The loop is the only owner of state; the worker
// only parses, waits and writes bytes.
#pragma once

#include <algorithm>
#include <any>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dispatch::service::http {

struct HttpRequest {
  std::string method;  // "GET", "HEAD" or "POST" (others are answered 405 by the listener itself)
  std::string path;    // decoded path without the query, e.g. "/api/v1/provisioning/find"
  // Decoded query parameters; a key given twice appears twice (the loop decides what that means).
  std::multimap<std::string, std::string> query;
  std::string content_type;          // empty when absent
  std::string authorization;         // the raw Authorization header, empty when absent (the console's token)
  std::optional<std::string> range;  // the raw Range header, if any (applied by the listener, see FileBody)
  std::string body;                  // at most the listener's max_body_bytes
  std::string peer;                  // "ip:port" of the TCP peer (a reverse proxy's address behind one)
  bool tls = false;                  // arrived over HTTPS
  // What the listener's `prepare` hook (HttpServerOptions) attached on the worker thread: work too slow
  // for the loop, done before the exchange reaches it (the agent API's registration key pair). Empty
  // when the hook did nothing. It is the request's only field that may hold a secret: never log it.
  std::any prepared;

  // The first value of query parameter `key`, nullopt when absent.
  std::optional<std::string> param(const std::string& key) const {
    auto it = query.find(key);
    if (it == query.end()) return std::nullopt;
    return it->second;
  }
  // How many times `key` appears in the query.
  size_t param_count(const std::string& key) const { return query.count(key); }
};

// A byte range of a file on disk that the listener streams without copying it into memory. It is the
// whole representation: the listener applies the request's Range header to it (206/416) itself.
struct FileBody {
  std::string path;
  std::uint64_t offset = 0;  // where the representation starts in the file
  std::uint64_t length = 0;  // its length in bytes (Content-Length of a 200)
  // Reported back in HttpStreamed so the loop can find its download; opaque to the listener.
  std::uint64_t stream_tag = 0;
};

// A reply body the loop keeps writing after the answer (server-sent events): the listener sends the
// head (200, chunked) and then every chunk the loop offers, until the loop closes the stream, the
// client goes away (a write fails) or the listener stops. Thread-safe: the loop offers and closes, the
// worker takes and marks the client gone.
//
// Bounded: at most one chunk waits. A new offer replaces the waiting one (an event stream of full
// snapshots needs only the newest), so a slow client costs one chunk of memory, never a queue.
class EventStream {
 public:
  // The loop: replaces the waiting chunk. False once the stream is over (client gone, closed, stopped).
  bool offer(std::string chunk) {
    std::lock_guard lk(mu_);
    if (over_) return false;
    pending_ = std::move(chunk);
    cv_.notify_all();
    return true;
  }
  // The loop: ends the stream after the waiting chunk is written.
  void close() {
    std::lock_guard lk(mu_);
    closing_ = true;
    cv_.notify_all();
  }
  // True once nothing more will be written (the loop drops the stream then).
  bool over() const {
    std::lock_guard lk(mu_);
    return over_;
  }

  enum class Take { chunk, idle, end };
  // The worker: waits up to `timeout` for a chunk (returned in `out`), returning early when `stop` is
  // set. end: closed by the loop (and nothing waits) or stopping; idle: nothing came within `timeout`.
  Take take(std::string& out, std::chrono::steady_clock::duration timeout, const std::atomic<bool>& stop) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lk(mu_);
    for (;;) {
      if (pending_) {
        out = std::move(*pending_);
        pending_.reset();
        return Take::chunk;
      }
      if (closing_ || over_ || stop.load()) return Take::end;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return Take::idle;
      cv_.wait_for(
          lk, std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::milliseconds(50)));
    }
  }
  // The worker: the stream is over (written to the end, the client went away, or the listener stops).
  void finish() {
    std::lock_guard lk(mu_);
    over_ = true;
    pending_.reset();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<std::string> pending_;  // guarded by mu_
  bool closing_ = false;                // guarded by mu_
  bool over_ = false;                   // guarded by mu_
};

struct HttpReply {
  int status = 200;
  // Extra headers, e.g. {"Retry-After", "212"}. Content-Length is always computed by the listener.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;  // of `body` (ignored with `file`); empty and a non-empty body -> text/plain
  std::string body;
  // When set, `status`, `content_type` and `body` are ignored: the listener streams `file` (200, or 206
  // with Content-Range for a satisfiable Range, or 416), `application/octet-stream`, `Accept-Ranges:
  // bytes`, and afterwards pushes one HttpStreamed event.
  std::optional<FileBody> file;
  // When set (and `file` is not), the listener answers `status` with `content_type` and a chunked body
  // fed from the stream (see EventStream); `body` is ignored. For HEAD only the head is sent and the
  // stream is finished at once.
  std::shared_ptr<EventStream> stream;
};

// The loop's answer slot for one exchange. Thread-safe; answered at most once.
class ReplySlot {
 public:
  // Called by the loop. True if the listener will send this reply; false if the worker already gave up
  // (timeout, shutdown): then nothing is sent and, for a FileBody, no HttpStreamed will follow.
  bool answer(HttpReply reply) {
    std::lock_guard lk(mu_);
    if (abandoned_ || reply_) return false;
    reply_ = std::move(reply);
    cv_.notify_all();
    return true;
  }

  // Called by the worker: waits up to `timeout` for the answer, returning early (nullopt) once `stop`
  // is true. Without an answer the slot is abandoned atomically, so a later answer() returns false.
  std::optional<HttpReply> wait(std::chrono::steady_clock::duration timeout, const std::atomic<bool>& stop) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lk(mu_);
    while (!reply_ && !stop.load() && std::chrono::steady_clock::now() < deadline) {
      auto slice = std::min<std::chrono::steady_clock::duration>(deadline - std::chrono::steady_clock::now(),
                                                                 std::chrono::milliseconds(50));
      cv_.wait_for(lk, slice, [&] { return reply_.has_value(); });
    }
    if (!reply_) {
      abandoned_ = true;
      return std::nullopt;
    }
    return std::move(reply_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<HttpReply> reply_;  // guarded by mu_
  bool abandoned_ = false;          // guarded by mu_
};

// Event: one HTTP request for the loop. `reply` must be answered (any status) or dropped; a dropped or
// late answer makes the listener send 503.
// The request is held by pointer so that every Event stays as small as an MQTT message (144 bytes, not
// 312): the queue holds MQTT traffic far more often than HTTP.
struct HttpExchange {
  std::string listener;  // the HttpServer's name ("agent", "ops"), so one loop can serve several
  std::shared_ptr<const HttpRequest> request;  // never null
  std::shared_ptr<ReplySlot> reply;            // never null
};

// Event: a FileBody answer has been written (or the connection broke). Bytes are in representation
// coordinates: [first, first + bytes_sent) of the FileBody was handed to the socket. complete is true
// when the whole selected range (the 200 body or the 206 part) was written. Not sent for HEAD or 416.
struct HttpStreamed {
  std::string listener;
  std::uint64_t stream_tag = 0;
  std::uint64_t first = 0;
  std::uint64_t bytes_sent = 0;
  bool complete = false;
};

}  // namespace dispatch::service::http
