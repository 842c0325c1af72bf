// DownloadTokens: the bookkeeping of download tokens (PROTOCOL §2.4). A token exists in clear only in
// the answer that issues it; the database keeps its SHA-256. A token serves one download: every byte of
// its package once, in any order, with re-requests allowed, and then it is spent. Re-requests are
// bounded: one token pulls at most max_download_factor × the package size in total (issue 15, download
// amplification); the request that would pass the bound gets token_invalid and spends the token. The
// count is the token row's pulled_bytes (storage::TokenStore::serve), so it is exact across instances and
// survives a restart (issue 13).
//
// A token is Base64url of 40 bytes: an 8-byte prefix that orders tokens by their issue (the issue time in
// milliseconds, shifted left 16 bits, plus a counter) and 32 random bytes. Its database key is the prefix
// in hex followed by the token's SHA-256: tokens issued one after another land next to each other in the
// key's index instead of at a random place, so a batch of package queries rewrites one or two index pages
// instead of one page per token (docs/performance.md: about a sixth of the WAL bytes of a query). The
// prefix tells nothing a device could not read in `expires_at`; the 256 random bits are the secret. Tokens
// of 32 bytes (issued before this format) keep their plain SHA-256 key until they expire.
#pragma once

#include <cstdint>
#include <string>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/tokens.h"

namespace dispatch::service::provisioning {

class DownloadTokens {
 public:
  // max_download_factor: 1 .. 100 (the config's range); a smaller value counts as 1.
  DownloadTokens(storage::Database& db, core::TimeMs ttl_ms, std::int64_t max_download_factor);

  struct Issued {
    std::string token;  // Base64url, 40 bytes (256 random bits); give it to the device, never log it
    core::TimeMs expires_at = 0;
  };
  // The database key of a token (storage::DownloadTokenRow::token_hash): hex of its ordering prefix and its
  // SHA-256, or the plain SHA-256 for a token of another length.
  static std::string key_of(std::string_view token);

  // A new token for (hw, package_id), valid until now + ttl. Storage errors only.
  core::Result<Issued> issue(const std::string& hw, const std::string& package_id, core::TimeMs now);

  // The row of `token` when it is usable by hw at now; token_invalid "download token is invalid, spent or
  // expired" when it is unknown, spent, expired or another device's.
  core::Result<storage::DownloadTokenRow> check(const std::string& token, const std::string& hw,
                                                core::TimeMs now);
  // The same for a request that names no device (HTTP `download?token=`): the token's own device.
  core::Result<storage::DownloadTokenRow> check(const std::string& token, core::TimeMs now);

  // A pre-check before the bytes are read: whether `length` more bytes may be served under the token
  // (of a package of `total` bytes), judged on row.pulled_bytes as check() read it. When they would take
  // it past max_download_factor × total, spends the token and answers token_invalid "download token
  // exhausted: …". Passing it promises nothing: record() decides under the row lock.
  core::Status charge(const storage::DownloadTokenRow& row, std::int64_t length, std::int64_t total);

  // Records [offset, offset + length) as served and counts length against the bound, in the database
  // (storage::TokenStore::serve). When another request (on any instance) took the count so far that
  // these bytes would pass the bound, the token is spent (committed) and the answer is the same
  // token_invalid "download token exhausted: …" as charge's: the caller must not send the bytes.
  core::Result<storage::SpendResult> record(const storage::DownloadTokenRow& row, core::TimeMs now,
                                            std::int64_t offset, std::int64_t length, std::int64_t total);

  // Deletes the package's unspent tokens; how many.
  core::Result<int> remove_for_package(const std::string& package_id);

  // The most bytes one token may pull of a package of `total` bytes: max_download_factor × total
  // (saturating; total < 0 counts as 0).
  std::int64_t bound(std::int64_t total) const;

 private:
  // Logs the rate-limited warning and builds the token_invalid "download token exhausted" error.
  core::Error exhausted(const storage::DownloadTokenRow& row, std::int64_t pulled, std::int64_t bound) const;

  storage::TokenStore store_;
  std::uint16_t issued_in_ms_ = 0;  // the counter of the ordering prefix
  core::TimeMs ttl_ms_;
  std::int64_t factor_;
};

}  // namespace dispatch::service::provisioning
