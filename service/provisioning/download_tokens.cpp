#include "service/provisioning/download_tokens.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

#include "protocol/core/encoding.h"
#include "protocol/core/secrets.h"
#include "service/logging.h"

namespace dispatch::service::provisioning {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

namespace {

constexpr std::size_t k_prefix_bytes = 8;
constexpr std::size_t k_random_bytes = 32;
constexpr std::size_t k_token_chars = 54;  // Base64url of 40 bytes, no padding

core::Error invalid() {
  return make_error(ErrorCode::token_invalid, "download token is invalid, spent or expired");
}

}  // namespace

DownloadTokens::DownloadTokens(storage::Database& db, core::TimeMs ttl_ms, std::int64_t max_download_factor)
    : store_(db), ttl_ms_(ttl_ms), factor_(std::max<std::int64_t>(max_download_factor, 1)) {}

namespace {

// The key of a token of the ordered format, from its raw bytes and its Base64url text.
std::string ordered_key(std::string_view raw, std::string_view token) {
  return core::hex_encode(raw.substr(0, k_prefix_bytes)) + core::sha256_hex(token);
}

}  // namespace

std::string DownloadTokens::key_of(std::string_view token) {
  // Only a token of the ordered format's length is decoded; anything else is looked up by its SHA-256 as
  // before (and an unknown one is simply not found).
  if (token.size() == k_token_chars) {
    if (auto raw = core::base64url_decode(token); raw && raw->size() == k_prefix_bytes + k_random_bytes) {
      return ordered_key(*raw, token);
    }
  }
  return core::sha256_hex(token);
}

Result<DownloadTokens::Issued> DownloadTokens::issue(const std::string& hw, const std::string& package_id,
                                                     core::TimeMs now) {
  // The prefix: big-endian (now << 16 | counter), so that keys sort by issue.
  const auto order = (static_cast<std::uint64_t>(std::max<core::TimeMs>(now, 0)) << 16) | issued_in_ms_++;
  std::string raw(k_prefix_bytes, '\0');
  for (std::size_t i = 0; i < k_prefix_bytes; ++i) {
    raw[i] = static_cast<char>((order >> (8 * (k_prefix_bytes - 1 - i))) & 0xff);
  }
  raw += core::random_bytes(k_random_bytes);
  Issued issued;
  issued.token = core::base64url_encode(raw);
  issued.expires_at = now + ttl_ms_;
  storage::DownloadTokenRow row;
  row.token_hash = ordered_key(raw, issued.token);
  row.hardware_id = hw;
  row.package_id = package_id;
  row.created_at = now;
  row.expires_at = issued.expires_at;
  if (auto st = store_.insert(row); !st) return st.error();
  return issued;
}

Result<storage::DownloadTokenRow> DownloadTokens::check(const std::string& token, const std::string& hw,
                                                        core::TimeMs now) {
  auto row = store_.get_by_hash(key_of(token));
  if (!row) {
    if (row.error().code == ErrorCode::not_found) return invalid();
    return row.error();
  }
  if (row->spent || now >= row->expires_at || row->hardware_id != hw) return invalid();
  return row;
}

Result<storage::DownloadTokenRow> DownloadTokens::check(const std::string& token, core::TimeMs now) {
  auto row = store_.get_by_hash(key_of(token));
  if (!row) {
    if (row.error().code == ErrorCode::not_found) return invalid();
    return row.error();
  }
  // The token's own device: the row just read, not a second lookup.
  if (row->spent || now >= row->expires_at) return invalid();
  return row;
}

std::int64_t DownloadTokens::bound(std::int64_t total) const {
  if (total <= 0) return 0;
  if (total > std::numeric_limits<std::int64_t>::max() / factor_)
    return std::numeric_limits<std::int64_t>::max();
  return factor_ * total;
}

core::Error DownloadTokens::exhausted(const storage::DownloadTokenRow& row, std::int64_t pulled,
                                      std::int64_t bound) const {
  log_limited(spdlog::level::warn, "download.over_bound",
              {{"hardware_id", row.hardware_id}, {"package_id", row.package_id}},
              "download token spent: {} bytes pulled, bound {} bytes", pulled, bound);
  return make_error(
      ErrorCode::token_invalid,
      fmt::format("download token exhausted: it may pull at most {} bytes ({} x the package size); "
                  "query the package again",
                  bound, factor_));
}

Status DownloadTokens::charge(const storage::DownloadTokenRow& row, std::int64_t length, std::int64_t total) {
  const std::int64_t max = bound(total);
  if (length <= max - row.pulled_bytes) return {};
  // The count only grows, so serve() would refuse these bytes too: spend the token now, without reading
  // them. A spend that fails is an error of its own (the token stays usable, the caller answers it).
  if (auto st = store_.spend(row.token_hash); !st) return st.error();
  return exhausted(row, row.pulled_bytes, max);
}

Result<storage::SpendResult> DownloadTokens::record(const storage::DownloadTokenRow& row, core::TimeMs now,
                                                    std::int64_t offset, std::int64_t length,
                                                    std::int64_t total) {
  const std::int64_t max = bound(total);
  auto served = store_.serve(row.token_hash, row.hardware_id, now, offset, length, total, max);
  if (!served) return served.error();
  if (served->exhausted) return exhausted(row, served->pulled_bytes, max);
  return served;
}

Result<int> DownloadTokens::remove_for_package(const std::string& package_id) {
  return store_.remove_for_package(package_id);
}

}  // namespace dispatch::service::provisioning
