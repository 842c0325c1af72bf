// The metric registry and its text format (service/metrics.h), and the ops endpoints' answers
// (service/ops.h), checked line by line and with the strict parser of tests/support/prom_text.h.
#include "service/metrics.h"

#include <catch2/catch.hpp>
#include <stdexcept>

#include "service/ops.h"
#include "tests/support/prom_text.h"

using namespace dispatch;
using service::metrics::Registry;

TEST_CASE("counters and gauges render with HELP, TYPE and their labels", "[service][metrics]") {
  Registry r;
  r.counter("dispatch_things_total", "Things seen", {{"kind", "a"}}).inc(3);
  r.counter("dispatch_things_total", "Things seen", {{"kind", "b"}}).inc();
  r.counter("dispatch_things_total", "Things seen", {{"kind", "a"}}).inc(2);  // the same sample again
  r.gauge("dispatch_depth", "Depth").set(7);
  r.gauge("dispatch_ratio", "Ratio").set(0.25);
  CHECK(r.render() ==
        "# HELP dispatch_things_total Things seen\n"
        "# TYPE dispatch_things_total counter\n"
        "dispatch_things_total{kind=\"a\"} 5\n"
        "dispatch_things_total{kind=\"b\"} 1\n"
        "# HELP dispatch_depth Depth\n"
        "# TYPE dispatch_depth gauge\n"
        "dispatch_depth 7\n"
        "# HELP dispatch_ratio Ratio\n"
        "# TYPE dispatch_ratio gauge\n"
        "dispatch_ratio 0.25\n");
  CHECK(testing::parse_prom_text(r.render()).errors.empty());
}

TEST_CASE("label values and help texts are escaped", "[service][metrics]") {
  Registry r;
  r.counter("dispatch_x_total", "a \\ back\nslash", {{"v", "q\"uote \\ new\nline"}}).inc();
  const std::string text = r.render();
  CHECK_THAT(text, Catch::Contains("# HELP dispatch_x_total a \\\\ back\\nslash\n"));
  CHECK_THAT(text, Catch::Contains("dispatch_x_total{v=\"q\\\"uote \\\\ new\\nline\"} 1\n"));
  auto parsed = testing::parse_prom_text(text);
  CHECK(parsed.errors.empty());
  CHECK(parsed.value("dispatch_x_total", {{"v", "q\"uote \\ new\nline"}}) == 1);
}

TEST_CASE("histogram buckets are cumulative and +Inf equals the count", "[service][metrics]") {
  Registry r;
  auto& h = r.histogram("dispatch_latency_seconds", "Latency", {0.1, 1, 10}, {{"route", "x/y"}});
  for (double v : {0.05, 0.1, 0.5, 0.7, 5.0, 50.0}) h.observe(v);
  const std::string text = r.render();
  CHECK_THAT(text,
             Catch::Contains("# TYPE dispatch_latency_seconds histogram\n"
                             "dispatch_latency_seconds_bucket{route=\"x/y\",le=\"0.1\"} 2\n"  // le inclusive
                             "dispatch_latency_seconds_bucket{route=\"x/y\",le=\"1\"} 4\n"
                             "dispatch_latency_seconds_bucket{route=\"x/y\",le=\"10\"} 5\n"
                             "dispatch_latency_seconds_bucket{route=\"x/y\",le=\"+Inf\"} 6\n"
                             "dispatch_latency_seconds_sum{route=\"x/y\"} 56.35\n"
                             "dispatch_latency_seconds_count{route=\"x/y\"} 6\n"));
  auto parsed = testing::parse_prom_text(text);
  CHECK(parsed.errors.empty());
  CHECK(parsed.types["dispatch_latency_seconds"] == "histogram");
}

TEST_CASE("a described family renders without samples and lists its series names", "[service][metrics]") {
  Registry r;
  r.describe("dispatch_a_total", "A", Registry::Type::counter);
  r.describe("dispatch_h_seconds", "H", Registry::Type::histogram, {1, 2});
  CHECK(r.render() ==
        "# HELP dispatch_a_total A\n# TYPE dispatch_a_total counter\n"
        "# HELP dispatch_h_seconds H\n# TYPE dispatch_h_seconds histogram\n");
  CHECK(r.series_names() == std::vector<std::string>{"dispatch_a_total", "dispatch_h_seconds_bucket",
                                                     "dispatch_h_seconds_sum", "dispatch_h_seconds_count"});
  // A sample asked for later uses the described bounds.
  r.histogram("dispatch_h_seconds", "H", {1, 2}).observe(1.5);
  CHECK_THAT(r.render(), Catch::Contains("dispatch_h_seconds_bucket{le=\"2\"} 1\n"));
  CHECK(testing::parse_prom_text(r.render()).errors.empty());
}

TEST_CASE("values format as integers, shortest decimals and special values", "[service][metrics]") {
  using service::metrics::format_value;
  CHECK(format_value(0) == "0");
  CHECK(format_value(42) == "42");
  CHECK(format_value(0.0005) == "0.0005");
  CHECK(format_value(2.5) == "2.5");
  CHECK(format_value(HUGE_VAL) == "+Inf");
  CHECK(format_value(-HUGE_VAL) == "-Inf");
  CHECK(format_value(std::nan("")) == "NaN");
}

TEST_CASE("registration contracts are enforced", "[service][metrics]") {
  Registry r;
  CHECK_THROWS_AS(r.counter("0bad", "x"), std::logic_error);
  CHECK_THROWS_AS(r.counter("dispatch_ok_total", "x", {{"le", "1"}}), std::logic_error);
  CHECK_THROWS_AS(r.counter("dispatch_ok_total", "x", {{"bad-name", "1"}}), std::logic_error);
  r.counter("dispatch_ok_total", "x");
  CHECK_THROWS_AS(r.gauge("dispatch_ok_total", "x"), std::logic_error);        // another type
  CHECK_THROWS_AS(r.counter("dispatch_ok_total", "other"), std::logic_error);  // another help
  CHECK_THROWS_AS(r.histogram("dispatch_h", "h", {2, 1}), std::logic_error);   // not increasing
}

TEST_CASE("the test parser rejects what a scraper would", "[service][metrics]") {
  // The parser is what the integration tests trust: it must fail on broken text.
  CHECK_FALSE(testing::parse_prom_text("dispatch_x 1\n").errors.empty());  // no TYPE
  CHECK_FALSE(
      testing::parse_prom_text("# TYPE dispatch_x counter\ndispatch_x 1\n").errors.empty());  // _total
  CHECK_FALSE(testing::parse_prom_text("# TYPE dispatch_x_total counter\ndispatch_x_total{a=\"b} 1\n")
                  .errors.empty());
  CHECK_FALSE(testing::parse_prom_text("# TYPE dispatch_h histogram\n"
                                       "dispatch_h_bucket{le=\"1\"} 2\ndispatch_h_bucket{le=\"+Inf\"} 1\n"
                                       "dispatch_h_sum 1\ndispatch_h_count 1\n")
                  .errors.empty());
  CHECK_FALSE(testing::parse_prom_text("# TYPE dispatch_h histogram\n"
                                       "dispatch_h_bucket{le=\"1\"} 1\ndispatch_h_bucket{le=\"+Inf\"} 2\n"
                                       "dispatch_h_sum 1\ndispatch_h_count 3\n")
                  .errors.empty());
}

TEST_CASE("ops endpoints: paths, methods, readiness reasons", "[service][metrics]") {
  std::vector<std::string> reasons;
  service::OpsProbes probes;
  probes.metrics = [] { return std::string("# TYPE dispatch_x_total counter\ndispatch_x_total 1\n"); };
  probes.not_ready = [&] { return reasons; };
  auto ask = [&](std::string method, std::string path) {
    service::http::HttpRequest req;
    req.method = std::move(method);
    req.path = std::move(path);
    return service::ops_answer(req, probes);
  };
  auto m = ask("GET", "/metrics");
  CHECK(m.status == 200);
  CHECK(m.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(m.body == probes.metrics());
  CHECK(ask("GET", "/healthz").status == 200);
  CHECK(ask("HEAD", "/healthz").status == 200);
  auto ready = ask("GET", "/readyz");
  CHECK(ready.status == 200);
  CHECK(ready.body == "ready\n");
  reasons = {"mqtt: disconnected (connection refused)", "database: disk I/O error"};
  auto not_ready = ask("GET", "/readyz");
  CHECK(not_ready.status == 503);
  CHECK(not_ready.body == "mqtt: disconnected (connection refused)\ndatabase: disk I/O error\n");
  auto post = ask("POST", "/metrics");
  CHECK(post.status == 405);
  REQUIRE(post.headers.size() == 1);
  CHECK(post.headers[0] == std::pair<std::string, std::string>("Allow", "GET, HEAD"));
  CHECK(ask("GET", "/").status == 404);
  CHECK(ask("GET", "/metrics/x").status == 404);
  CHECK(ask("POST", "/nope").status == 404);
}
