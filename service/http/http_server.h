// HttpServer: an embedded HTTP/1.1 listener (cpp-httplib 0.11, Debian libcpp-httplib-dev) that hands
// every request to the service loop, the way the MQTT link hands over Paho's messages.
//
// Threads: one accept thread plus a fixed pool of `worker_threads` workers. A worker reads one request,
// pushes an HttpExchange onto the EventQueue and waits for the loop's HttpReply; the loop thread stays
// the only owner of state. The worker then writes the reply, streaming a FileBody from disk in 64 KiB
// pieces (a package is never copied into memory), and reports the bytes written with HttpStreamed.
//
// Bounds (each refusal is answered by the listener itself, without the loop):
// - request body over `max_body_bytes` (default 64 KiB): 413;
// - request line over 8 KiB: 414; a header line over 8 KiB, or a malformed request line or header: 400
//   (cpp-httplib's compiled limits). cpp-httplib 0.11 does not bound the number of header lines nor
//   the total header size; the listener refuses headers totalling over `max_header_bytes` with 431
//   before routing, but only after reading them (see docs/security.md: put a reverse proxy in front
//   on an untrusted network);
// - a malformed or unsatisfiable Range: 416; methods other than GET, HEAD, POST: 405;
// - worker threads: `worker_threads` (default 4); accepted connections waiting for a worker:
//   `max_queued_connections` (default 64) -- beyond that the accept thread stops accepting and the
//   kernel's listen backlog holds (then refuses) new connections;
// - keep-alive: at most `keep_alive_max_requests` requests (default 100) per connection, idle for at
//   most `keep_alive_timeout` (default 5 s; an idle connection holds its worker that long). While any
//   accepted connection waits for a worker, every answer carries `Connection: close`, so a worker is
//   freed as soon as its client has its answer; socket read and write timeouts `io_timeout` (10 s);
// - the loop's answer: `reply_timeout` (default 30 s), then 503 with `Retry-After: 5`; on stop() every
//   waiting request gets 503 at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "protocol/core/result.h"
#include "service/event_queue.h"
#include "service/http/http_exchange.h"

namespace httplib {
class Server;
}

namespace dispatch::service::http {

struct HttpServerOptions {
  std::string name = "agent";  // copied into every event (HttpExchange::listener)
  // "host:port"; "[::1]:8080" for IPv6; port 0 picks a free port (see HttpServer::port()).
  std::string listen = "127.0.0.1:0";
  // HTTPS when both are set (PEM files); plain HTTP when both are empty.
  std::string tls_cert_file;
  std::string tls_key_file;

  std::size_t max_body_bytes = 64 * 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t worker_threads = 4;
  std::size_t max_queued_connections = 64;
  std::size_t keep_alive_max_requests = 100;
  std::chrono::seconds keep_alive_timeout{5};
  std::chrono::seconds io_timeout{10};
  std::chrono::milliseconds reply_timeout{30000};

  // Called on the worker thread for every request that passed the listener's own checks, before the
  // exchange is pushed to the loop: for stateless work too slow for the loop thread (the agent API
  // makes a registering agent's RSA key pair here, AgentApi::prepare). It may fill
  // HttpRequest::prepared and must not touch service state. It runs on at most `worker_threads`
  // requests at once; an exception becomes a 500 without reaching the loop.
  std::function<void(HttpRequest&)> prepare;
};

class HttpServer {
 public:
  // Binds the socket (so the port is known and a taken port fails here) and starts serving. The queue
  // must outlive the server. Errors: bad_request for a malformed `listen`, one TLS file without the
  // other, or an unreadable/invalid certificate or key; unavailable when the address cannot be bound.
  static core::Result<std::unique_ptr<HttpServer>> start(HttpServerOptions options, EventQueue& queue);

  // stop(), then the destructor joins every thread.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (the chosen one when `listen` said port 0).
  int port() const { return port_; }
  const HttpServerOptions& options() const { return options_; }
  bool tls() const { return !options_.tls_cert_file.empty(); }
  // Accepted connections waiting for a worker right now (at most max_queued_connections).
  std::size_t waiting_connections() const { return waiting_connections_.load(); }

  // Stops accepting, answers every request still waiting for the loop with 503, lets the workers
  // finish the replies they are writing (a stream in progress is cut and reported incomplete), and
  // joins all threads; an idle keep-alive connection may hold it up to `keep_alive_timeout`.
  // Idempotent and thread-safe. Call it before the loop stops draining the queue, so that no worker is
  // left blocked pushing onto a full queue.
  void stop();

 private:
  class Impl;
  HttpServer(HttpServerOptions options, EventQueue& queue);

  HttpServerOptions options_;
  EventQueue& queue_;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<Impl> impl_;
  std::thread accept_thread_;
  std::mutex stop_mu_;  // serializes stop()
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> waiting_connections_{0};
  int port_ = 0;
};

// "host:port" -> {host, port}; "[v6]:port" -> {v6, port}. bad_request when the port is missing, not a
// number or above 65535, or the host is empty.
core::Result<std::pair<std::string, int>> parse_listen_address(std::string_view listen);

}  // namespace dispatch::service::http
