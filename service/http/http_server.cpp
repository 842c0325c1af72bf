#include "service/http/http_server.h"

#include <fcntl.h>
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <vector>

#include "service/http/byte_range.h"

namespace dispatch::service::http {
namespace {

using core::ErrorCode;
using core::make_error;

constexpr std::size_t k_stream_piece = 64 * 1024;
// How long an event stream may stay silent before the listener writes a comment line to probe the client.
constexpr std::chrono::seconds k_stream_idle{5};

// httplib's ThreadPool queues accepted connections without limit. This pool blocks the accept thread
// instead once `max_queued` connections wait, so new connections wait in the kernel's backlog. It
// publishes how many accepted connections wait for a worker in `waiting` (read by the handlers).
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(std::size_t threads, std::size_t max_queued, const std::atomic<bool>& stopping,
              std::atomic<std::size_t>& waiting)
      : max_queued_(max_queued == 0 ? 1 : max_queued), stopping_(stopping), waiting_(waiting) {
    for (std::size_t i = 0; i < (threads == 0 ? 1 : threads); ++i) workers_.emplace_back([this] { run(); });
  }
  ~BoundedPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock lk(mu_);
    // Slices: `stopping_` is the server's flag, set without our mutex; while stopping the queue takes
    // every connection so the accept thread can reach its exit check.
    while (queue_.size() >= max_queued_ && !stopping_.load() && !shutdown_) {
      not_full_.wait_for(lk, std::chrono::milliseconds(50));
    }
    queue_.push_back(std::move(fn));
    waiting_.store(queue_.size());
    not_empty_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lk(mu_);
      if (shutdown_ && workers_.empty()) return;
      shutdown_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lk(mu_);
        not_empty_.wait(lk, [&] { return shutdown_ || !queue_.empty(); });
        if (queue_.empty()) return;  // shut down and drained
        fn = std::move(queue_.front());
        queue_.pop_front();
        waiting_.store(queue_.size());
        not_full_.notify_one();
      }
      try {
        fn();
      } catch (...) {
        // httplib catches handler exceptions itself; this is allocation failure while writing. The
        // worker survives; the connection's socket is closed by httplib's own unwinding.
      }
    }
  }

  const std::size_t max_queued_;
  const std::atomic<bool>& stopping_;
  std::atomic<std::size_t>& waiting_;  // written under mu_
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool shutdown_ = false;                    // guarded by mu_
  std::vector<std::thread> workers_;
};

std::size_t header_bytes(const httplib::Request& req) {
  std::size_t n = req.method.size() + req.target.size() + req.version.size() + 4;
  for (const auto& [k, v] : req.headers) n += k.size() + v.size() + 4;
  return n;
}

bool readable(const std::string& path) { return std::ifstream(path).good(); }

}  // namespace

class HttpServer::Impl {
 public:
  explicit Impl(HttpServer& owner) : owner_(owner) {}

  void handle(const httplib::Request& req, httplib::Response& res) {
    answer(req, res);
    // httplib's model is one connection per worker, and a kept-alive connection holds its worker while
    // idle (up to keep_alive_timeout) even when other connections wait for one: with as many idle
    // clients as workers, every new connection waited out the timeout (measured: HTTP downloads of 8
    // devices through 4 workers at a flat 3.2 MiB/s, 16 MiB per 5 s timeout). So while a connection
    // waits, each answer closes its own: httplib writes "Connection: close" when the request says so
    // (it reads the request's header again when writing), and the client closes, freeing the worker.
    if (owner_.waiting_connections_.load() > 0) {
      auto& mutable_req = const_cast<httplib::Request&>(req);  // httplib's own object, not const
      mutable_req.headers.erase("Connection");
      mutable_req.headers.emplace("Connection", "close");
    }
  }

 private:
  void answer(const httplib::Request& req, httplib::Response& res) {
    // We apply Range ourselves (select_range): httplib 0.11 applies its parsed ranges to a content
    // provider without checking them against the length.
    const_cast<httplib::Request&>(req).ranges.clear();
    const auto& opt = owner_.options_;
    if (header_bytes(req) > opt.max_header_bytes) {
      res.status = 431;
      return;
    }
    if (owner_.stopping_.load()) {
      unavailable(res);
      return;
    }
    HttpExchange exchange;
    exchange.listener = opt.name;
    exchange.reply = std::make_shared<ReplySlot>();
    auto request = std::make_shared<HttpRequest>();
    HttpRequest& r = *request;
    r.method = req.method;
    r.path = req.path;
    r.query.insert(req.params.begin(), req.params.end());
    if (req.has_header("Content-Type")) r.content_type = req.get_header_value("Content-Type");
    if (req.has_header("Authorization")) r.authorization = req.get_header_value("Authorization");
    if (req.has_header("Range")) r.range = req.get_header_value("Range");
    r.body = req.body;
    r.peer = req.remote_addr + ":" + std::to_string(req.remote_port);
    r.tls = owner_.tls();
    if (opt.prepare) opt.prepare(r);
    exchange.request = std::move(request);
    auto slot = exchange.reply;
    owner_.queue_.push(Event{std::move(exchange)});

    std::optional<HttpReply> reply = slot->wait(opt.reply_timeout, owner_.stopping_);
    if (!reply) {
      unavailable(res);
      return;
    }
    if (reply->file) {
      send_file(req, res, std::move(*reply));
      return;
    }
    if (reply->stream) {
      send_stream(req, res, std::move(*reply));
      return;
    }
    res.status = reply->status;
    for (auto& [k, v] : reply->headers) res.set_header(k.c_str(), v);
    if (!reply->body.empty()) {
      res.set_content(std::move(reply->body),
                      reply->content_type.empty() ? "text/plain" : reply->content_type.c_str());
    } else if (!reply->content_type.empty()) {
      res.set_header("Content-Type", reply->content_type);
    }
  }

  static void unavailable(httplib::Response& res) {
    res.status = 503;
    res.set_header("Retry-After", "5");
  }

  void report(const FileBody& file, std::uint64_t first, std::uint64_t sent, bool complete) {
    owner_.queue_.push_nonblocking(
        Event{HttpStreamed{owner_.options_.name, file.stream_tag, first, sent, complete}});
  }

  void send_file(const httplib::Request& req, httplib::Response& res, HttpReply reply) {
    const FileBody file = *reply.file;
    const bool head = req.method == "HEAD";
    for (auto& [k, v] : reply.headers) res.set_header(k.c_str(), v);
    res.set_header("Accept-Ranges", "bytes");
    // get_header_value() returns a std::string by value: keep it alive while the view is used.
    const std::string range_header = req.has_header("Range") ? req.get_header_value("Range") : std::string();
    std::optional<std::string_view> range;
    if (req.has_header("Range")) range = range_header;
    RangeSelection sel = select_range(range, file.length);
    if (sel.kind == RangeSelection::Kind::unsatisfiable) {
      res.status = 416;
      res.set_header("Content-Range", "bytes */" + std::to_string(file.length));
      return;
    }
    std::uint64_t first = 0, length = file.length;
    res.status = 200;
    if (sel.kind == RangeSelection::Kind::partial) {
      first = sel.first;
      length = sel.length;
      res.status = 206;
      res.set_header("Content-Range", "bytes " + std::to_string(first) + "-" +
                                          std::to_string(first + length - 1) + "/" +
                                          std::to_string(file.length));
    }
    int fd = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      res.status = 500;
      if (!head) report(file, first, 0, false);
      return;
    }
    if (length == 0) {  // httplib needs a non-empty provider for Content-Length; an empty body is simpler
      ::close(fd);
      res.set_header("Content-Type", "application/octet-stream");
      if (!head) report(file, first, 0, true);
      return;
    }
    struct Stream {
      int fd;
      std::uint64_t file_start;  // where byte 0 of the selected range is in the file
      std::uint64_t sent = 0;
    };
    auto stream = std::make_shared<Stream>(Stream{fd, file.offset + first});
    res.set_content_provider(
        static_cast<std::size_t>(length), "application/octet-stream",
        [stream](std::size_t offset, std::size_t len, httplib::DataSink& sink) {
          std::vector<char> buf(std::min(len, k_stream_piece));
          ssize_t n =
              ::pread(stream->fd, buf.data(), buf.size(), static_cast<off_t>(stream->file_start + offset));
          if (n <= 0) return false;  // the file shrank or broke: cancel, the client sees a short body
          if (!sink.write(buf.data(), static_cast<std::size_t>(n))) return false;
          stream->sent += static_cast<std::uint64_t>(n);
          return true;
        },
        [this, stream, file, first, length, head](bool success) {
          ::close(stream->fd);
          if (!head) report(file, first, stream->sent, success && stream->sent == length);
        });
  }

  // A chunked body fed from the loop's EventStream. The worker stays with the connection until the
  // stream ends; a comment line is written after `k_stream_idle` without a chunk, so that a client that
  // went away is noticed (the write fails) and its stream and worker are freed.
  void send_stream(const httplib::Request& req, httplib::Response& res, HttpReply reply) {
    auto stream = reply.stream;
    res.status = reply.status;
    for (auto& [k, v] : reply.headers) res.set_header(k.c_str(), v);
    const std::string type = reply.content_type.empty() ? "text/plain" : reply.content_type;
    if (req.method == "HEAD") {
      res.set_header("Content-Type", type);
      stream->finish();
      return;
    }
    res.set_chunked_content_provider(
        type,
        [this, stream](std::size_t, httplib::DataSink& sink) {
          std::string chunk;
          switch (stream->take(chunk, k_stream_idle, owner_.stopping_)) {
            case EventStream::Take::chunk:
              if (!sink.write(chunk.data(), chunk.size())) return false;
              return true;
            case EventStream::Take::idle: {
              static constexpr std::string_view k_ping = ": idle\n\n";
              return sink.write(k_ping.data(), k_ping.size());
            }
            case EventStream::Take::end:
              sink.done();
              return true;
          }
          return false;
        },
        [stream](bool) { stream->finish(); });
  }

  HttpServer& owner_;
};

core::Result<std::pair<std::string, int>> parse_listen_address(std::string_view listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string_view::npos)
    return make_error(ErrorCode::bad_request, "listen address needs host:port");
  std::string_view host = listen.substr(0, colon), port_s = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return make_error(ErrorCode::bad_request, "listen address has no host");
  int port = -1;
  auto [p, ec] = std::from_chars(port_s.data(), port_s.data() + port_s.size(), port);
  if (port_s.empty() || ec != std::errc() || p != port_s.data() + port_s.size() || port < 0 || port > 65535) {
    return make_error(ErrorCode::bad_request, "listen address has a bad port: '" + std::string(port_s) + "'");
  }
  return std::pair{std::string(host), port};
}

HttpServer::HttpServer(HttpServerOptions options, EventQueue& queue)
    : options_(std::move(options)), queue_(queue), impl_(std::make_unique<Impl>(*this)) {}

core::Result<std::unique_ptr<HttpServer>> HttpServer::start(HttpServerOptions options, EventQueue& queue) {
  auto addr = parse_listen_address(options.listen);
  if (!addr) return addr.error();
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return make_error(ErrorCode::bad_request, "HTTPS needs both a certificate file and a key file");
  }
  std::unique_ptr<HttpServer> self(new HttpServer(std::move(options), queue));
  const auto& opt = self->options_;
  if (opt.tls_cert_file.empty()) {
    self->server_ = std::make_unique<httplib::Server>();
  } else {
    if (!readable(opt.tls_cert_file) || !readable(opt.tls_key_file)) {
      return make_error(ErrorCode::bad_request, "cannot read the HTTPS certificate or key file");
    }
    auto tls = std::make_unique<httplib::SSLServer>(opt.tls_cert_file.c_str(), opt.tls_key_file.c_str());
    if (!tls->is_valid()) {
      return make_error(ErrorCode::bad_request,
                        "the HTTPS certificate or key is not valid PEM, or they do not match");
    }
    self->server_ = std::move(tls);
  }
  httplib::Server& svr = *self->server_;
  HttpServer* raw = self.get();
  svr.new_task_queue = [raw] {
    return new BoundedPool(raw->options_.worker_threads, raw->options_.max_queued_connections, raw->stopping_,
                           raw->waiting_connections_);
  };
  // httplib's default also sets SO_REUSEPORT, which lets a second process bind the same port and take
  // half the connections silently; we want "address in use" instead.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // httplib writes the head and the body in two sends: with Nagle, the body waits for the client's
  // delayed ACK (40 ms per small answer on a keep-alive connection, measured).
  svr.set_tcp_nodelay(true);
  svr.set_payload_max_length(opt.max_body_bytes);
  svr.set_read_timeout(opt.io_timeout);
  svr.set_write_timeout(opt.io_timeout);
  svr.set_keep_alive_max_count(std::max<std::size_t>(opt.keep_alive_max_requests, 1));  // httplib asserts > 0
  svr.set_keep_alive_timeout(static_cast<time_t>(opt.keep_alive_timeout.count()));
  auto handler = [raw](const httplib::Request& req, httplib::Response& res) { raw->impl_->handle(req, res); };
  auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET, HEAD, POST");
  };
  svr.Get(".*", handler).Post(".*", handler);
  svr.Put(".*", not_allowed).Patch(".*", not_allowed).Delete(".*", not_allowed).Options(".*", not_allowed);
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    res.status = 500;  // never the exception's text: it may name a path or a value
  });

  const auto& [host, port] = addr.value();
  if (port == 0) {
    self->port_ = svr.bind_to_any_port(host);
    if (self->port_ < 0) return make_error(ErrorCode::unavailable, "cannot bind " + opt.listen);
  } else {
    if (!svr.bind_to_port(host, port)) return make_error(ErrorCode::unavailable, "cannot bind " + opt.listen);
    self->port_ = port;
  }
  auto returned = std::make_shared<std::atomic<bool>>(false);
  self->accept_thread_ = std::thread([raw, returned] {
    raw->server_->listen_after_bind();
    returned->store(true);
  });
  // httplib's stop() does nothing until listen_after_bind() has marked the server running.
  while (!svr.is_running() && !returned->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (returned->load()) {  // nobody stopped it: listening failed
    self->accept_thread_.join();
    return make_error(ErrorCode::unavailable, "cannot listen on " + opt.listen);
  }
  return self;
}

void HttpServer::stop() {
  std::lock_guard lk(stop_mu_);
  stopping_.store(true);
  if (server_) server_->stop();
  if (accept_thread_.joinable()) accept_thread_.join();
}

HttpServer::~HttpServer() { stop(); }

}  // namespace dispatch::service::http
