// The facade keeps the one entry point App and its router call; the work is in service/provisioning/.
#include "service/provisioning.h"

#include <spdlog/spdlog.h>

#include "service/failpoint.h"
#include "service/provisioning/device_query.h"
#include "service/provisioning/device_replies.h"
#include "service/provisioning/disk_package_files.h"
#include "service/provisioning/download_tokens.h"
#include "service/provisioning/downloads.h"
#include "service/provisioning/packages.h"

namespace dispatch::service {

namespace {
constexpr core::TimeMs k_prune_period_ms = 10'000;
}

struct Provisioning::Impl {
  Impl(const Config& c, core::Clock& clk, storage::Database& db, Publisher& p, const protocol::Topics& t,
       provisioning::PackageFiles* given)
      : clock(clk),
        own_files(given ? nullptr : std::make_unique<provisioning::DiskPackageFiles>(c.storage_data_dir)),
        files(given ? *given : *own_files),
        replies(p, t),
        tokens(db, c.provisioning_download_token_ttl_s * 1000, c.provisioning_max_download_factor),
        packages(c, clk, db, files, tokens),
        query(c, clk, db, tokens, replies),
        downloads(c, clk, db, files, tokens, replies) {}

  core::Clock& clock;
  std::unique_ptr<provisioning::DiskPackageFiles> own_files;
  provisioning::PackageFiles& files;
  provisioning::DeviceReplies replies;
  provisioning::DownloadTokens tokens;
  provisioning::Packages packages;
  provisioning::DeviceQuery query;
  provisioning::Downloads downloads;
  core::TimeMs last_prune = 0;
};

Provisioning::Provisioning(const Config& config, core::Clock& clock, storage::Database& db,
                           Publisher& publisher, const protocol::Topics& topics)
    : impl_(std::make_unique<Impl>(config, clock, db, publisher, topics, nullptr)) {}
Provisioning::Provisioning(const Config& config, core::Clock& clock, storage::Database& db,
                           Publisher& publisher, const protocol::Topics& topics,
                           provisioning::PackageFiles& files)
    : impl_(std::make_unique<Impl>(config, clock, db, publisher, topics, &files)) {}
Provisioning::~Provisioning() = default;

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

void Provisioning::on_timer() {
  const core::TimeMs now = impl_->clock.now_ms();
  if (now - impl_->last_prune < k_prune_period_ms) return;
  impl_->last_prune = now;
  impl_->query.prune(now);
  if (auto st = impl_->tokens.prune(now); !st)
    spdlog::warn("download token pruning failed: {}", st.error().message);
}

void Provisioning::after_commit() {
  // The batch's answers (a download token, the last chunk, "ready") are not published yet.
  if (impl_->query.take_issued_token()) DISPATCH_FAILPOINT("after_token_issue_commit");
  if (impl_->downloads.take_spent_token()) DISPATCH_FAILPOINT("after_token_spend_commit");
  if (impl_->packages.take_finished_upload()) DISPATCH_FAILPOINT("after_package_ready_commit");
}

}  // namespace dispatch::service
