// dispatchd: the dispatch service. See `dispatchd --help`.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>
#include <vector>

#ifdef DISPATCH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "service/config.h"
#include "service/daemon.h"
#include "service/logging.h"
#include "service/migrate.h"

extern char** environ;

namespace {

// The allocator this build uses (CMake's DISPATCH_JEMALLOC), for the start-up log.
std::string allocator_name() {
#ifdef DISPATCH_JEMALLOC
  const char* version = nullptr;
  size_t size = sizeof version;
  if (mallctl("version", &version, &size, nullptr, 0) == 0 && version != nullptr)
    return std::string("jemalloc ") + version;
  return "jemalloc";
#else
  return "glibc malloc";
#endif
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  dispatch::service::CommandLineRequest req;
  auto config = dispatch::service::load_config(args, env, req);
  if (req.help) {
    std::fputs(dispatch::service::config_help().c_str(), stdout);
    return 0;
  }
  if (req.version) {
    std::printf("dispatchd %s\n", DISPATCH_VERSION);
    return 0;
  }
  if (req.print_metrics) {
    return dispatch::service::print_metrics(config ? *config : dispatch::service::Config{});
  }
  if (req.print_config_markdown) {
    std::fputs(dispatch::service::config_markdown().c_str(), stdout);
    return 0;
  }
  if (!config) {
    std::fprintf(stderr, "dispatchd: %s\n", config.error().message.c_str());
    return 2;
  }
  if (req.print_config) {
    std::fputs(dispatch::service::config_sample(*config).c_str(), stdout);
    return 0;
  }
  if (!req.migrate_to.empty()) return dispatch::service::run_migrate(*config, req.migrate_to);
  dispatch::service::setup_logging(std::string(to_string(config->log_format)),
                                   std::string(to_string(config->log_level)), config->log_rate_limit_burst,
                                   config->log_rate_limit_window_s * 1000);
  spdlog::info("dispatchd {} (memory allocator: {})", DISPATCH_VERSION, allocator_name());
  return dispatch::service::run_daemon(*config);
}
