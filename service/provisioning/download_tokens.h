// DownloadTokens: the bookkeeping of download tokens (PROTOCOL §2.4). A token exists in clear only in
// the answer that issues it; the database keeps its SHA-256. A token serves one download: every byte of
// its package once, in any order, with re-requests allowed, and then it is spent. Re-requests are
// bounded: one token pulls at most max_download_factor × the package size in total (issue 15, download
// amplification); the request that would pass the bound gets token_invalid and spends the token.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/tokens.h"

namespace dispatch::service::provisioning {

class DownloadTokens {
 public:
  DownloadTokens(storage::Database& db, core::TimeMs ttl_ms, std::int64_t max_download_factor);

  struct Issued {
    std::string token;  // Base64url, 256 bits; give it to the device, never log it
    core::TimeMs expires_at = 0;
  };
  // A new token for (hw, package_id), valid until now + ttl. Storage errors only.
  core::Result<Issued> issue(const std::string& hw, const std::string& package_id, core::TimeMs now);

  // The row of `token` when it is usable by hw at now; token_invalid "download token is invalid, spent or
  // expired" when it is unknown, spent, expired or another device's.
  core::Result<storage::DownloadTokenRow> check(const std::string& token, const std::string& hw,
                                                core::TimeMs now);
  // The same for a request that names no device (HTTP `download?token=`): the token's own device.
  core::Result<storage::DownloadTokenRow> check(const std::string& token, core::TimeMs now);

  // Says whether `length` more bytes may be served under the token (of a package of `total` bytes).
  // When they would take it past max_download_factor × total, spends the token and answers
  // token_invalid "download token exhausted: …".
  core::Status charge(const storage::DownloadTokenRow& row, core::TimeMs now, std::int64_t length,
                      std::int64_t total);

  // Records [offset, offset + length) as served (storage::TokenStore::serve) and counts the bytes
  // against the bound.
  core::Result<storage::SpendResult> record(const storage::DownloadTokenRow& row, core::TimeMs now,
                                            std::int64_t offset, std::int64_t length, std::int64_t total);

  // Deletes the package's unspent tokens; how many.
  core::Result<int> remove_for_package(const std::string& package_id);
  // Forgets the byte tallies of tokens that expired at or before now (their rows are deleted by the
  // retention module, service/retention.h).
  void prune(core::TimeMs now);

  // Bytes pulled under the token of this hash so far (0 when none or forgotten).
  std::int64_t pulled(const std::string& token_hash) const;

 private:
  struct Tally {
    std::int64_t bytes = 0;
    core::TimeMs expires_at = 0;
  };

  storage::TokenStore store_;
  core::TimeMs ttl_ms_;
  std::int64_t factor_;
  // Bytes pulled per live token, in memory: a restart starts each count again (a device cannot cause a
  // restart, so this bounds what it can pull between them). Entries go when the token is spent or expires.
  std::unordered_map<std::string, Tally> pulled_;
};

}  // namespace dispatch::service::provisioning
