// HttpServer over real loopback HTTP: a small stand-in loop thread drains the EventQueue and answers
// the exchanges the way the service loop will.
#include "service/http/http_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <any>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "tests/support/process.h"

using namespace dispatch::service;
using namespace dispatch::service::http;
using namespace std::chrono_literals;

namespace {

// Drains the queue on its own thread: HttpExchanges go to `answer` (which may leave them unanswered),
// HttpStreamed events are recorded.
class Loop {
 public:
  using Answer = std::function<void(HttpExchange&)>;
  explicit Loop(EventQueue& q, Answer answer) : q_(q), answer_(std::move(answer)) {
    thread_ = std::thread([this] { run(); });
  }
  ~Loop() {
    stop_ = true;
    thread_.join();
  }
  std::vector<HttpRequest> requests() {
    std::lock_guard lk(mu_);
    return requests_;
  }
  std::vector<HttpStreamed> streamed() {
    std::lock_guard lk(mu_);
    return streamed_;
  }
  // Waits until `n` HttpStreamed events arrived (the report follows the body by a few microseconds).
  bool wait_streamed(size_t n) {
    for (int i = 0; i < 500; ++i) {
      if (streamed().size() >= n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  // Exchanges left unanswered, for the test to answer later.
  void keep(std::shared_ptr<ReplySlot> slot) {
    std::lock_guard lk(mu_);
    kept_.push_back(std::move(slot));
  }
  std::vector<std::shared_ptr<ReplySlot>> kept() {
    std::lock_guard lk(mu_);
    return kept_;
  }

 private:
  void run() {
    while (!stop_) {
      auto ev = q_.pop_for(20ms);
      if (!ev) continue;
      if (auto* x = std::get_if<HttpExchange>(&*ev)) {
        {
          std::lock_guard lk(mu_);
          requests_.push_back(*x->request);
        }
        answer_(*x);
      } else if (auto* s = std::get_if<HttpStreamed>(&*ev)) {
        std::lock_guard lk(mu_);
        streamed_.push_back(*s);
      }
    }
  }
  EventQueue& q_;
  Answer answer_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<HttpRequest> requests_;
  std::vector<HttpStreamed> streamed_;
  std::vector<std::shared_ptr<ReplySlot>> kept_;
  std::thread thread_;
};

std::unique_ptr<HttpServer> start_server(EventQueue& q, HttpServerOptions opt = {}) {
  auto s = HttpServer::start(std::move(opt), q);
  REQUIRE(s.ok());
  REQUIRE(s.value()->port() > 0);
  return std::move(s.value());
}

// Sends raw bytes and returns the first response: its head and Content-Length bytes of body (or what
// came before the server closed the connection). No half-close: httplib treats it as a dead peer.
std::string raw_exchange(int port, const std::string& bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    out.append(buf, static_cast<size_t>(n));
    auto head_end = out.find("\r\n\r\n");
    if (head_end == std::string::npos) continue;
    size_t length = 0;
    auto cl = out.find("Content-Length: ");
    if (cl != std::string::npos && cl < head_end) length = std::stoul(out.substr(cl + 16));
    if (out.size() >= head_end + 4 + length) break;
  }
  ::close(fd);
  return out;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
  return s;
}

}  // namespace

TEST_CASE("HttpServer: a request reaches the loop as an HttpExchange and the loop's reply is sent") {
  EventQueue q;
  auto server = start_server(q);
  Loop loop(q, [](HttpExchange& x) {
    HttpReply r;
    r.status = x.request->path == "/api/v1/provisioning/find" ? 200 : 404;
    r.content_type = "application/json";
    r.body = R"({"id":"","hw":")" + x.request->param("hardwareId").value_or("?") + "\"}";
    r.headers.emplace_back("X-Listener", x.listener);
    CHECK(x.reply->answer(std::move(r)));
  });
  httplib::Client cli("127.0.0.1", server->port());
  auto res = cli.Get("/api/v1/provisioning/find?version=1.0.0&hardwareId=gw%2D1&token=a%2Bb%3D");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == R"({"id":"","hw":"gw-1"})");
  CHECK(res->get_header_value("Content-Type") == "application/json");
  CHECK(res->get_header_value("X-Listener") == "agent");

  auto post = cli.Post("/api/v1/agent/register", R"({"hardwareId":"gw-1"})", "application/json");
  REQUIRE(post);
  CHECK(post->status == 404);

  auto reqs = loop.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].method == "GET");
  CHECK(reqs[0].path == "/api/v1/provisioning/find");
  CHECK(reqs[0].param("token") == "a+b=");  // query values arrive decoded
  CHECK(reqs[0].param("version") == "1.0.0");
  CHECK_FALSE(reqs[0].param("packageId").has_value());
  CHECK(reqs[0].peer.starts_with("127.0.0.1:"));
  CHECK_FALSE(reqs[0].tls);
  CHECK(reqs[1].method == "POST");
  CHECK(reqs[1].content_type == "application/json");
  CHECK(reqs[1].body == R"({"hardwareId":"gw-1"})");
}

TEST_CASE(
    "HttpServer: a loop that never answers gives 503 after the reply timeout, a late answer is refused") {
  EventQueue q;
  HttpServerOptions opt;
  opt.reply_timeout = 300ms;
  auto server = start_server(q, opt);
  Loop loop(q, [&](HttpExchange& x) { loop.keep(x.reply); });
  httplib::Client cli("127.0.0.1", server->port());
  auto t0 = std::chrono::steady_clock::now();
  auto res = cli.Get("/api/v1/provisioning/find?hardwareId=gw-1");
  auto waited = std::chrono::steady_clock::now() - t0;
  REQUIRE(res);
  CHECK(res->status == 503);
  CHECK(res->get_header_value("Retry-After") == "5");
  CHECK(waited >= 300ms);
  CHECK(waited < 5s);
  REQUIRE(loop.requests().size() == 1);
  // The loop learns that its answer came too late (so it must not count a download as served).
  REQUIRE(loop.kept().size() == 1);
  CHECK_FALSE(loop.kept()[0]->answer(HttpReply{}));
}

TEST_CASE("HttpServer: the prepare hook runs on the worker thread before the loop sees the request") {
  EventQueue q;
  HttpServerOptions opt;
  opt.prepare = [](HttpRequest& r) {
    if (r.path == "/slow") r.prepared = std::this_thread::get_id();
  };
  auto server = start_server(q, opt);
  std::thread::id loop_thread;
  Loop loop(q, [&](HttpExchange& x) {
    loop_thread = std::this_thread::get_id();
    HttpReply r;
    const auto* made_on = std::any_cast<std::thread::id>(&x.request->prepared);
    r.body = !made_on ? "none" : *made_on == loop_thread ? "loop" : "worker";
    CHECK(x.reply->answer(std::move(r)));
  });
  httplib::Client cli("127.0.0.1", server->port());
  auto slow = cli.Get("/slow");
  REQUIRE(slow);
  CHECK(slow->body == "worker");
  auto other = cli.Get("/other");
  REQUIRE(other);
  CHECK(other->body == "none");
}

TEST_CASE("HttpServer: while a connection waits for a worker, every answer closes its connection") {
  // One worker, held by an idle keep-alive connection: without the rule, a second client would wait
  // out the whole keep-alive timeout (30 s here); with it, the first client's next answer says
  // "Connection: close", its client closes, and the waiting connection is served at once.
  EventQueue q;
  HttpServerOptions opt;
  opt.worker_threads = 1;
  opt.keep_alive_timeout = 30s;
  auto server = start_server(q, opt);
  Loop loop(q, [](HttpExchange& x) {
    HttpReply r;
    r.body = x.request->path;
    CHECK(x.reply->answer(std::move(r)));
  });
  httplib::Client a("127.0.0.1", server->port());
  a.set_keep_alive(true);
  auto first = a.Get("/a1");
  REQUIRE(first);
  CHECK(first->get_header_value("Connection") != "close");  // nobody waits: kept alive
  CHECK(first->has_header("Keep-Alive"));

  const auto t0 = std::chrono::steady_clock::now();
  auto waiting = std::async(std::launch::async, [&] {
    httplib::Client b("127.0.0.1", server->port());
    b.set_read_timeout(60, 0);
    auto res = b.Get("/b");
    return res ? res->body : std::string("failed");
  });
  // The accept thread queues b's connection: the worker is a1's, idle.
  for (int i = 0; i < 500 && server->waiting_connections() == 0; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(server->waiting_connections() == 1);
  auto second = a.Get("/a2");
  REQUIRE(second);
  CHECK(second->body == "/a2");
  CHECK(second->get_header_value("Connection") == "close");
  CHECK(waiting.get() == "/b");
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  CHECK(server->waiting_connections() == 0);
}

TEST_CASE("HttpServer: a body over max_body_bytes gets 413 and never reaches the loop") {
  EventQueue q;
  HttpServerOptions opt;
  opt.max_body_bytes = 1024;
  auto server = start_server(q, opt);
  Loop loop(q, [](HttpExchange& x) { x.reply->answer(HttpReply{200, {}, "", "ok", {}, {}}); });
  httplib::Client cli("127.0.0.1", server->port());
  auto big = cli.Post("/api/v1/agent/register", std::string(1025, 'x'), "application/json");
  REQUIRE(big);
  CHECK(big->status == 413);
  CHECK(loop.requests().empty());
  auto fits = cli.Post("/api/v1/agent/register", std::string(1024, 'x'), "application/json");
  REQUIRE(fits);
  CHECK(fits->status == 200);
  CHECK(loop.requests().size() == 1);
}

TEST_CASE("HttpServer: a file answer streams exactly the selected bytes with the Range headers") {
  dispatch::testing::TempDir dir;
  const std::string path = dir.path() + "/pkg.bin";
  const std::string file = pattern(1200);
  std::ofstream(path, std::ios::binary) << file;
  // The representation is bytes [100, 1100) of the file: offsets are honoured, not just whole files.
  const std::string rep = file.substr(100, 1000);

  EventQueue q;
  auto server = start_server(q);
  Loop loop(q, [&](HttpExchange& x) {
    HttpReply r;
    r.headers.emplace_back("X-Package", "p1");
    r.file = FileBody{path, 100, 1000, 42};
    x.reply->answer(std::move(r));
  });
  httplib::Client cli("127.0.0.1", server->port());
  // One connection, so one worker serves the requests in order: a report of an earlier request would
  // be on the queue before the report of a later one.
  cli.set_keep_alive(true);

  struct {
    const char* rule;
    const char* range;  // nullptr: no Range header
    int status;
    const char* content_range;  // "" when absent
    size_t first, length;       // of the body within the representation
  } cases[] = {
      {"no Range: the whole representation", nullptr, 200, "", 0, 1000},
      {"closed range", "bytes=10-19", 206, "bytes 10-19/1000", 10, 10},
      {"suffix", "bytes=-5", 206, "bytes 995-999/1000", 995, 5},
      {"open range (resume)", "bytes=100-", 206, "bytes 100-999/1000", 100, 900},
      {"several ranges: the whole body, not multipart", "bytes=0-1,5-6", 200, "", 0, 1000},
  };
  size_t reports = 0;
  for (const auto& c : cases) {
    INFO(c.rule);
    httplib::Headers h;
    if (c.range) h.emplace("Range", c.range);
    auto res = cli.Get("/api/v1/provisioning/download?token=t", h);
    REQUIRE(res);
    CHECK(res->status == c.status);
    CHECK(res->body == rep.substr(c.first, c.length));
    CHECK(res->get_header_value("Content-Length") == std::to_string(c.length));
    CHECK(res->get_header_value("Content-Range") == c.content_range);
    CHECK(res->get_header_value("Accept-Ranges") == "bytes");
    CHECK(res->get_header_value("Content-Type") == "application/octet-stream");
    CHECK(res->get_header_value("X-Package") == "p1");
    ++reports;
    REQUIRE(loop.wait_streamed(reports));
    HttpStreamed s = loop.streamed().back();
    CHECK(s.listener == "agent");
    CHECK(s.stream_tag == 42);
    CHECK(s.first == c.first);
    CHECK(s.bytes_sent == c.length);
    CHECK(s.complete);
  }

  struct {
    const char* rule;
    const char* range;
  } refused[] = {
      {"first byte past the end", "bytes=1000-"},
      {"far past the end", "bytes=5000-6000"},
      {"reversed (refused by httplib before routing)", "bytes=19-10"},
      {"another unit", "items=0-1"},
  };
  for (const auto& c : refused) {
    INFO(c.rule);
    auto res = cli.Get("/api/v1/provisioning/download?token=t", {{"Range", c.range}});
    REQUIRE(res);
    CHECK(res->status == 416);
    CHECK(res->body.empty());
  }
  // HEAD: headers only, nothing streamed, nothing reported.
  auto head = cli.Head("/api/v1/provisioning/download?token=t");
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->get_header_value("Content-Length") == "1000");
  // The next report on this connection is the next GET's: the 416s and the HEAD reported nothing.
  auto last = cli.Get("/api/v1/provisioning/download?token=t", {{"Range", "bytes=999-"}});
  REQUIRE(last);
  CHECK(last->body == rep.substr(999));
  REQUIRE(loop.wait_streamed(reports + 1));
  CHECK(loop.streamed().size() == reports + 1);
  CHECK(loop.streamed().back().first == 999);
  CHECK(loop.streamed().back().bytes_sent == 1);
  auto r416 = raw_exchange(server->port(),
                           "GET /d HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-\r\nConnection: close\r\n\r\n");
  CHECK(r416.find("Content-Range: bytes */1000\r\n") != std::string::npos);
}

TEST_CASE("HttpServer: a multi-megabyte file is streamed byte for byte") {
  dispatch::testing::TempDir dir;
  const std::string path = dir.path() + "/big.bin";
  const std::string file = pattern(3 * 1024 * 1024 + 17);
  std::ofstream(path, std::ios::binary) << file;
  EventQueue q;
  auto server = start_server(q);
  Loop loop(q, [&](HttpExchange& x) {
    HttpReply r;
    r.file = FileBody{path, 0, file.size(), 7};
    x.reply->answer(std::move(r));
  });
  httplib::Client cli("127.0.0.1", server->port());
  auto res = cli.Get("/download");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == file);
  REQUIRE(loop.wait_streamed(1));
  CHECK(loop.streamed()[0].bytes_sent == file.size());
  CHECK(loop.streamed()[0].complete);
}

TEST_CASE("HttpServer: the listener itself answers malformed requests, other methods and oversize headers") {
  EventQueue q;
  HttpServerOptions opt;
  opt.max_header_bytes = 4096;
  auto server = start_server(q, opt);
  Loop loop(q, [](HttpExchange& x) { x.reply->answer(HttpReply{200, {}, "", "ok", {}, {}}); });
  const int port = server->port();

  CHECK(raw_exchange(port, "GARBAGE\r\n\r\n").starts_with("HTTP/1.1 400 "));
  CHECK(raw_exchange(port, "GET /x HTTP/9.9\r\n\r\n").starts_with("HTTP/1.1 400 "));
  CHECK(raw_exchange(port, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .starts_with("HTTP/1.1 405 "));
  CHECK(raw_exchange(port, "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n")
            .starts_with("HTTP/1.1 414 "));
  CHECK(raw_exchange(port, "GET /x HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n")
            .starts_with("HTTP/1.1 400 "));
  std::string many = "GET /x HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 3; ++i) many += "X-H" + std::to_string(i) + ": " + std::string(2000, 'a') + "\r\n";
  CHECK(raw_exchange(port, many + "Connection: close\r\n\r\n").starts_with("HTTP/1.1 431 "));
  CHECK(loop.requests().empty());

  // A long path (near the 8 KiB request-line limit) is routed without trouble.
  auto ok = raw_exchange(
      port, "GET /" + std::string(3000, 'p') + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(ok.starts_with("HTTP/1.1 200 "));
  CHECK(loop.requests().size() == 1);
}

TEST_CASE("HttpServer: stop() answers waiting requests with 503 at once and joins") {
  EventQueue q;
  HttpServerOptions opt;
  opt.reply_timeout = 30s;
  auto server = start_server(q, opt);
  std::atomic<int> seen{0};
  Loop loop(q, [&](HttpExchange&) { ++seen; });  // never answers
  std::optional<int> status;
  std::thread client([&] {
    httplib::Client cli("127.0.0.1", server->port());
    if (auto res = cli.Get("/slow")) status = res->status;
  });
  for (int i = 0; i < 500 && seen == 0; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(seen == 1);
  auto t0 = std::chrono::steady_clock::now();
  server->stop();
  client.join();
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(status == 503);
  server->stop();  // idempotent
  httplib::Client after("127.0.0.1", server->port());
  after.set_connection_timeout(1s);
  CHECK_FALSE(after.Get("/x"));  // nobody listens any more
}

namespace {

int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

// Reads from fd into `out` until it contains `what` (true) or the socket ends or times out (false).
bool read_until(int fd, std::string& out, const std::string& what) {
  char buf[4096];
  while (out.find(what) == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    out.append(buf, static_cast<size_t>(n));
  }
  return true;
}

// A loop that answers every request with a stream and hands the stream to the test.
struct StreamLoop {
  std::mutex mu;
  std::shared_ptr<EventStream> stream;
  std::shared_ptr<EventStream> wait() {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lk(mu);
        if (stream) return stream;
      }
      std::this_thread::sleep_for(10ms);
    }
    return nullptr;
  }
};

}  // namespace

TEST_CASE(
    "HttpServer: a stream reply sends each chunk the loop offers, uncompressed, until the loop closes it") {
  EventQueue q(64);
  StreamLoop sl;
  Loop loop(q, [&](HttpExchange& x) {
    HttpReply r;
    r.content_type = "text/event-stream";
    r.headers.emplace_back("X-Test", "1");
    r.stream = std::make_shared<EventStream>();
    r.stream->offer("data: first\n\n");
    {
      std::lock_guard lk(sl.mu);
      sl.stream = r.stream;
    }
    x.reply->answer(std::move(r));
  });
  auto server = start_server(q);
  int fd = connect_loopback(server->port());
  const std::string req = "GET /events HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n\r\n";
  REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
  std::string got;
  REQUIRE(read_until(fd, got, "data: first\n\n"));
  const auto head = got.substr(0, got.find("\r\n\r\n"));
  CHECK(head.starts_with("HTTP/1.1 200"));
  CHECK(head.find("Content-Type: text/event-stream") != std::string::npos);
  CHECK(head.find("Transfer-Encoding: chunked") != std::string::npos);
  CHECK(head.find("Content-Encoding") == std::string::npos);  // a compressor would hold the events back
  CHECK(head.find("X-Test: 1") != std::string::npos);
  auto stream = sl.wait();
  REQUIRE(stream);
  CHECK(stream->offer("data: second\n\n"));
  REQUIRE(read_until(fd, got, "data: second\n\n"));
  CHECK_FALSE(stream->over());
  stream->close();
  REQUIRE(read_until(fd, got, "\r\n0\r\n\r\n"));  // the chunked body's end
  for (int i = 0; i < 200 && !stream->over(); ++i) std::this_thread::sleep_for(10ms);
  CHECK(stream->over());
  CHECK_FALSE(stream->offer("data: late\n\n"));
  ::close(fd);
}

TEST_CASE("HttpServer: a stream whose client went away is over at the next write, and stop() ends open streams") {
  EventQueue q(64);
  StreamLoop sl;
  Loop loop(q, [&](HttpExchange& x) {
    HttpReply r;
    r.content_type = "text/event-stream";
    r.stream = std::make_shared<EventStream>();
    r.stream->offer("data: first\n\n");
    {
      std::lock_guard lk(sl.mu);
      sl.stream = r.stream;
    }
    x.reply->answer(std::move(r));
  });
  auto server = start_server(q);
  {
    int fd = connect_loopback(server->port());
    const std::string req = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
    std::string got;
    REQUIRE(read_until(fd, got, "data: first\n\n"));
    ::close(fd);
  }
  auto stream = sl.wait();
  REQUIRE(stream);
  // The first write after the close may still succeed (the peer's reset comes back with it).
  bool over = false;
  for (int i = 0; i < 100 && !over; ++i) {
    stream->offer("data: more\n\n");
    std::this_thread::sleep_for(50ms);
    over = stream->over();
  }
  CHECK(over);

  // A second stream, left open by its client: stop() does not wait for it.
  {
    std::lock_guard lk(sl.mu);
    sl.stream.reset();
  }
  int fd = connect_loopback(server->port());
  const std::string req = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
  std::string got;
  REQUIRE(read_until(fd, got, "data: first\n\n"));
  auto open = sl.wait();
  REQUIRE(open);
  const auto t0 = std::chrono::steady_clock::now();
  server->stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  CHECK(open->over());
  ::close(fd);
}

TEST_CASE("HttpServer: port 0 picks a free port, a taken port and a malformed address are errors") {
  EventQueue q;
  auto a = start_server(q);
  auto b = start_server(q);
  CHECK(a->port() != b->port());
  HttpServerOptions taken;
  taken.listen = "127.0.0.1:" + std::to_string(a->port());
  auto t = HttpServer::start(taken, q);
  REQUIRE_FALSE(t.ok());
  CHECK(t.error().code == dispatch::core::ErrorCode::unavailable);

  struct {
    const char* rule;
    const char* listen;
    bool ok;
    const char* host;
    int port;
  } cases[] = {
      {"host and port", "0.0.0.0:8443", true, "0.0.0.0", 8443},
      {"IPv6 in brackets", "[::1]:80", true, "::1", 80},
      {"port 0", "localhost:0", true, "localhost", 0},
      {"no port", "127.0.0.1", false, "", 0},
      {"empty port", "127.0.0.1:", false, "", 0},
      {"port too large", "127.0.0.1:65536", false, "", 0},
      {"negative port", "127.0.0.1:-1", false, "", 0},
      {"port with letters", "127.0.0.1:80a", false, "", 0},
      {"no host", ":80", false, "", 0},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = parse_listen_address(c.listen);
    REQUIRE(r.ok() == c.ok);
    if (c.ok) {
      CHECK(r->first == c.host);
      CHECK(r->second == c.port);
    } else {
      CHECK(r.error().code == dispatch::core::ErrorCode::bad_request);
    }
  }
}

TEST_CASE("HttpServer: HTTPS with a certificate and key file") {
  dispatch::testing::TempDir dir;
  const std::string cert = dir.path() + "/cert.pem", key = dir.path() + "/key.pem";
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " +
                          key + " -out " + cert + " >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  EventQueue q;
  HttpServerOptions opt;
  opt.tls_cert_file = cert;
  opt.tls_key_file = key;
  auto server = start_server(q, opt);
  CHECK(server->tls());
  Loop loop(q, [](HttpExchange& x) {
    x.reply->answer(HttpReply{200, {}, "", x.request->tls ? "tls" : "plain", {}, {}});
  });
  httplib::SSLClient cli("127.0.0.1", server->port());
  cli.enable_server_certificate_verification(false);
  auto res = cli.Get("/x");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == "tls");

  struct {
    const char* rule;
    std::string cert, key;
  } bad[] = {
      {"certificate without key", cert, ""},
      {"key without certificate", "", key},
      {"missing file", dir.path() + "/none.pem", key},
      {"key file is not a key", cert, cert},
  };
  for (const auto& c : bad) {
    INFO(c.rule);
    HttpServerOptions o;
    o.tls_cert_file = c.cert;
    o.tls_key_file = c.key;
    auto r = HttpServer::start(o, q);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == dispatch::core::ErrorCode::bad_request);
  }
}
