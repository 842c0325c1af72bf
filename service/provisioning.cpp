// The facade keeps the one entry point App and its router call; the work is in service/provisioning/.
#include "service/provisioning.h"

#include <spdlog/spdlog.h>

#include "service/provisioning/db_package_files.h"
#include "service/provisioning/device_query.h"
#include "service/provisioning/disk_package_files.h"
#include "service/provisioning/download_tokens.h"
#include "service/provisioning/downloads.h"
#include "service/provisioning/packages.h"
#include "service/router.h"
#include "storage/database.h"

namespace dispatch::service {

struct Provisioning::Impl {
  Impl(const Config& c, core::Clock& clk, storage::Database& db, Publisher& p, const protocol::Topics& t,
       BatchEffects& effects, provisioning::PackageFiles* given)
      : config(c),
        clock(clk),
        own_files(given ? nullptr : default_files(c, db)),
        files(given ? *given : *own_files),
        answers(t, p, c.mqtt_qos),
        tokens(db, c.provisioning_download_token_ttl_s * 1000, c.provisioning_max_download_factor),
        packages(c, clk, db, files, tokens, effects),
        query(c, clk, db, tokens, answers, effects),
        downloads(c, clk, db, files, tokens, answers, effects) {}

  const Config& config;
  core::Clock& clock;
  // One node (SQLite): files in storage.data_dir. Several instances (PostgreSQL): rows of the shared
  // database, with storage.data_dir as the local cache of HTTP downloads (docs/storage.md).
  static std::unique_ptr<provisioning::PackageFiles> default_files(const Config& c, storage::Database& db) {
    if (db.backend() == storage::Backend::postgres) {
      return std::make_unique<provisioning::DbPackageFiles>(db, c.storage_data_dir);
    }
    return std::make_unique<provisioning::DiskPackageFiles>(c.storage_data_dir);
  }

  std::unique_ptr<provisioning::PackageFiles> own_files;
  provisioning::PackageFiles& files;
  DeviceAnswers answers;  // the router's answer to a device, for the queries and downloads answered here
  provisioning::DownloadTokens tokens;
  provisioning::Packages packages;
  provisioning::DeviceQuery query;
  provisioning::Downloads downloads;
};

Provisioning::Provisioning(const Config& config, core::Clock& clock, storage::Database& db,
                           Publisher& publisher, const protocol::Topics& topics, BatchEffects& effects)
    : impl_(std::make_unique<Impl>(config, clock, db, publisher, topics, effects, nullptr)) {}
Provisioning::Provisioning(const Config& config, core::Clock& clock, storage::Database& db,
                           Publisher& publisher, const protocol::Topics& topics, BatchEffects& effects,
                           provisioning::PackageFiles& files)
    : impl_(std::make_unique<Impl>(config, clock, db, publisher, topics, effects, &files)) {}
Provisioning::~Provisioning() = default;

void Provisioning::register_routes(Router& router) {
  using protocol::TopicKind;
  for (const char* action : {"create", "get", "list", "update", "delete"}) {
    router.add_api("packages", action,
                   [this, a = std::string(action)](const nlohmann::json& body) { return api(a, body); });
  }
  // The chunk limit plus room for the frame's header.
  router.add_api_frame(
      "packages", "upload", static_cast<std::size_t>(impl_->config.provisioning_max_chunk_bytes) + 4096,
      [this](const nlohmann::json& header, std::string_view bytes) { return upload(header, bytes); });
  const auto limit = static_cast<std::size_t>(impl_->config.api_max_request_bytes);
  router.add_device(
      TopicKind::provisioning_request, limit,
      [this](const std::string& hw, const InboundMessage& m) { on_request(hw, m); },
      TopicKind::provisioning_reply);
  // Every query to the topic counts in the device's rate window, an oversize one too (PROTOCOL §2.1).
  router.set_oversize_handler(TopicKind::provisioning_request,
                              [this](const std::string& hw, const InboundMessage& m, std::size_t max_bytes) {
                                on_oversize_request(hw, m, max_bytes);
                              });
  router.add_device(
      TopicKind::provisioning_download, limit,
      [this](const std::string& hw, const InboundMessage& m) { on_download(hw, m); },
      TopicKind::provisioning_data);
}

core::Status Provisioning::start() {
  if (auto st = impl_->query.start(); !st) return st;
  return impl_->packages.start();
}

core::Result<nlohmann::json> Provisioning::api(const std::string& action, const nlohmann::json& body) {
  impl_->query.packages_changed();  // whatever the action, the next selection reads the packages again
  return impl_->packages.api(action, body);
}

core::Result<nlohmann::json> Provisioning::upload(const nlohmann::json& header, std::string_view body) {
  impl_->query.packages_changed();
  return impl_->packages.upload(header, body);
}

void Provisioning::on_request(const std::string& hw, const InboundMessage& m) {
  impl_->query.on_request(hw, m);
}
void Provisioning::on_download(const std::string& hw, const InboundMessage& m) {
  impl_->downloads.on_download(hw, m);
}
void Provisioning::on_oversize_request(const std::string& hw, const InboundMessage& m, std::size_t limit) {
  impl_->query.on_oversize_request(hw, m, limit);
}

core::Result<nlohmann::json> Provisioning::query(const std::string& hw, const nlohmann::json& body) {
  return impl_->query.query(hw, body);
}
core::Result<provisioning::Downloads::Stream> Provisioning::begin_stream(const std::string& token) {
  return impl_->downloads.begin_stream(token);
}
void Provisioning::end_stream(std::uint64_t tag, std::int64_t first, std::int64_t bytes) {
  impl_->downloads.end_stream(tag, first, bytes);
}
void Provisioning::abandon_stream(std::uint64_t tag) { impl_->downloads.abandon_stream(tag); }
std::optional<std::uint64_t> Provisioning::stream_in_progress(const std::string& token) const {
  return impl_->downloads.stream_in_progress(token);
}

ProvisioningCounters Provisioning::counters() const {
  ProvisioningCounters c;
  c.queries = impl_->query.outcomes();
  c.download_bytes_mqtt = impl_->downloads.bytes_mqtt();
  c.download_bytes_http = impl_->downloads.bytes_http();
  return c;
}

}  // namespace dispatch::service
