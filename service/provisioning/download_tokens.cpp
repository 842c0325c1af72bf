#include "service/provisioning/download_tokens.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/core/secrets.h"
#include "service/logging.h"

namespace dispatch::service::provisioning {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

namespace {

core::Error invalid() {
  return make_error(ErrorCode::token_invalid, "download token is invalid, spent or expired");
}

}  // namespace

DownloadTokens::DownloadTokens(storage::Database& db, core::TimeMs ttl_ms, std::int64_t max_download_factor)
    : store_(db), ttl_ms_(ttl_ms), factor_(max_download_factor) {}

Result<DownloadTokens::Issued> DownloadTokens::issue(const std::string& hw, const std::string& package_id,
                                                     core::TimeMs now) {
  Issued issued;
  issued.token = core::random_token();
  issued.expires_at = now + ttl_ms_;
  storage::DownloadTokenRow row;
  row.token_hash = core::sha256_hex(issued.token);
  row.hardware_id = hw;
  row.package_id = package_id;
  row.created_at = now;
  row.expires_at = issued.expires_at;
  if (auto st = store_.insert(row); !st) return st.error();
  return issued;
}

Result<storage::DownloadTokenRow> DownloadTokens::check(const std::string& token, const std::string& hw,
                                                        core::TimeMs now) {
  auto row = store_.get_by_hash(core::sha256_hex(token));
  if (!row) {
    if (row.error().code == ErrorCode::not_found) return invalid();
    return row.error();
  }
  if (row->spent || now >= row->expires_at || row->hardware_id != hw) return invalid();
  return row;
}

Result<storage::DownloadTokenRow> DownloadTokens::check(const std::string& token, core::TimeMs now) {
  auto row = store_.get_by_hash(core::sha256_hex(token));
  if (!row) {
    if (row.error().code == ErrorCode::not_found) return invalid();
    return row.error();
  }
  return check(token, row->hardware_id, now);
}

Status DownloadTokens::charge(const storage::DownloadTokenRow& row, core::TimeMs now, std::int64_t length,
                              std::int64_t total) {
  const std::int64_t bound = factor_ * total;
  const std::int64_t so_far = pulled(row.token_hash);
  if (length <= bound - so_far) return {};
  // Spent through the one spending path: the whole package counts as served.
  auto spent = store_.serve(row.token_hash, row.hardware_id, now, 0, total, total);
  if (!spent && spent.error().code != ErrorCode::token_invalid) return spent.error();
  pulled_.erase(row.token_hash);
  log_limited(spdlog::level::warn, "download.over_bound",
              {{"hardware_id", row.hardware_id}, {"package_id", row.package_id}},
              "download token spent: {} bytes pulled, bound {} bytes", so_far, bound);
  return make_error(
      ErrorCode::token_invalid,
      fmt::format("download token exhausted: it may pull at most {} bytes ({} x the package size); "
                  "query the package again",
                  bound, factor_));
}

Result<storage::SpendResult> DownloadTokens::record(const storage::DownloadTokenRow& row, core::TimeMs now,
                                                    std::int64_t offset, std::int64_t length,
                                                    std::int64_t total) {
  auto served = store_.serve(row.token_hash, row.hardware_id, now, offset, length, total);
  if (!served) return served.error();
  if (served->spent_now) {
    pulled_.erase(row.token_hash);
  } else {
    auto& tally = pulled_[row.token_hash];
    tally.bytes += length;
    tally.expires_at = row.expires_at;
  }
  return served;
}

Result<int> DownloadTokens::remove_for_package(const std::string& package_id) {
  return store_.remove_for_package(package_id);
}

void DownloadTokens::prune(core::TimeMs now) {
  std::erase_if(pulled_, [now](const auto& entry) { return entry.second.expires_at <= now; });
}

std::int64_t DownloadTokens::pulled(const std::string& token_hash) const {
  auto it = pulled_.find(token_hash);
  return it == pulled_.end() ? 0 : it->second.bytes;
}

}  // namespace dispatch::service::provisioning
