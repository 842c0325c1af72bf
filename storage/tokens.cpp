#include "storage/tokens.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace dispatch::storage {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using core::TimeMs;

namespace {

core::Error invalid() { return make_error(ErrorCode::token_invalid, "download token is not valid"); }

}  // namespace

Status TokenStore::insert(const DownloadTokenRow& row) {
  return db_.statement([&]() -> Status {
    auto q = db_.prepare(
        "INSERT INTO download_tokens(token_hash, hardware_id, package_id, created_at, "
        "expires_at, spent, served_bytes, pulled_bytes) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
    q->bind(1, row.token_hash);
    q->bind(2, row.hardware_id);
    q->bind(3, row.package_id);
    q->bind(4, row.created_at);
    q->bind(5, row.expires_at);
    q->bind(6, row.spent ? 1 : 0);
    q->bind(7, row.served_bytes);
    q->bind(8, row.pulled_bytes);
    q->exec();
    return {};
  });
}

Result<DownloadTokenRow> TokenStore::get_by_hash(const std::string& token_hash) {
  return db_.read([&]() -> Result<DownloadTokenRow> {
    auto q = db_.prepare(
        "SELECT token_hash, hardware_id, package_id, created_at, expires_at, spent, "
        "served_bytes, pulled_bytes FROM download_tokens WHERE token_hash = ?");
    q->bind(1, token_hash);
    if (!q->executeStep()) return make_error(ErrorCode::not_found, "no such download token");
    DownloadTokenRow row;
    row.token_hash = q->getColumn(0).getString();
    row.hardware_id = q->getColumn(1).getString();
    row.package_id = q->getColumn(2).getString();
    row.created_at = q->getColumn(3).getInt64();
    row.expires_at = q->getColumn(4).getInt64();
    row.spent = q->getColumn(5).getInt() != 0;
    row.served_bytes = q->getColumn(6).getInt64();
    row.pulled_bytes = q->getColumn(7).getInt64();
    return row;
  });
}

Result<SpendResult> TokenStore::serve(const std::string& token_hash, const std::string& hardware_id,
                                      TimeMs now, std::int64_t offset, std::int64_t length,
                                      std::int64_t total, std::int64_t max_pulled) {
  const bool empty_package = total == 0 && offset == 0 && length == 0;
  if (!empty_package && (offset < 0 || length < 1 || total < 0 || offset > total - length)) {
    return make_error(ErrorCode::bad_request, "chunk range is outside the package");
  }
  if (max_pulled < 0)
    return make_error(ErrorCode::bad_request, "the byte bound of a download token is negative");
  // IMMEDIATE (SQLite) or the token's row lock (PostgreSQL): the check and the spend happen under the
  // lock, so two connections cannot both see the token unspent and both spend it.
  return db_.transaction([&]() -> Result<SpendResult> {
    // PostgreSQL: the row lock makes a racing connection wait here and then read the row as the
    // winner left it (spent), so the check below sees it.
    auto q = db_.prepare(db_.dialect(
        "SELECT hardware_id, expires_at, spent, pulled_bytes FROM download_tokens WHERE token_hash = ?",
        "SELECT hardware_id, expires_at, spent, pulled_bytes FROM download_tokens WHERE token_hash = ? "
        "FOR UPDATE"));
    q->bind(1, token_hash);
    if (!q->executeStep()) return invalid();
    if (q->getColumn(0).getString() != hardware_id || now >= q->getColumn(1).getInt64() ||
        q->getColumn(2).getInt() != 0) {
      return invalid();
    }
    const std::int64_t pulled = q->getColumn(3).getInt64();
    q->reset();

    // The byte bound, read and written under the same lock: a racing connection waits and then sees
    // this request's bytes counted (or the token spent). Both are non-negative, so the subtraction
    // cannot overflow (a smaller bound after a restart leaves it negative: exhausted). An exhausted token is
    // spent and its ranges dropped, like a token that served every byte; the answer is a value so that this
    // transaction commits the spend.
    if (length > max_pulled - pulled) {
      if (auto st = spend(token_hash); !st) return st.error();
      SpendResult exhausted;
      exhausted.exhausted = true;
      exhausted.pulled_bytes = pulled;
      return exhausted;
    }

    // Merge the stored ranges with the new one and store the merged set back: the table stays as
    // small as the number of gaps, however many times chunks are re-requested.
    std::vector<std::pair<std::int64_t, std::int64_t>> ranges;  // [begin, end)
    auto r = db_.prepare("SELECT \"offset\", length FROM token_ranges WHERE token_hash = ?");
    r->bind(1, token_hash);
    while (r->executeStep()) {
      const std::int64_t begin = r->getColumn(0).getInt64();
      ranges.emplace_back(begin, begin + r->getColumn(1).getInt64());
    }
    r->reset();
    if (length > 0) ranges.emplace_back(offset, offset + length);
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<std::int64_t, std::int64_t>> merged;
    for (const auto& range : ranges) {
      if (!merged.empty() && range.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, range.second);
      } else {
        merged.push_back(range);
      }
    }
    std::int64_t covered = 0;
    for (const auto& [begin, end] : merged) {
      covered += std::max<std::int64_t>(0, std::min(end, total) - std::max<std::int64_t>(begin, 0));
    }
    const bool spent = covered >= total;

    auto clear = db_.prepare("DELETE FROM token_ranges WHERE token_hash = ?");
    clear->bind(1, token_hash);
    clear->exec();
    if (!spent) {
      auto add = db_.prepare("INSERT INTO token_ranges(token_hash, \"offset\", length) VALUES(?, ?, ?)");
      for (const auto& [begin, end] : merged) {
        add->reset();
        add->bind(1, token_hash);
        add->bind(2, begin);
        add->bind(3, end - begin);
        add->exec();
      }
    }
    auto u = db_.prepare(
        "UPDATE download_tokens SET spent = ?, served_bytes = ?, pulled_bytes = ? WHERE token_hash = ?");
    u->bind(1, spent ? 1 : 0);
    u->bind(2, covered);
    u->bind(3, pulled + length);
    u->bind(4, token_hash);
    u->exec();
    SpendResult result;
    result.spent_now = spent;
    result.served_bytes = covered;
    result.pulled_bytes = pulled + length;
    return result;
  });
}

Status TokenStore::spend(const std::string& token_hash) {
  return db_.transaction([&]() -> Status {
    auto clear = db_.prepare("DELETE FROM token_ranges WHERE token_hash = ?");
    clear->bind(1, token_hash);
    clear->exec();
    auto q = db_.prepare("UPDATE download_tokens SET spent = 1 WHERE token_hash = ?");
    q->bind(1, token_hash);
    q->exec();
    return {};
  });
}

Result<int> TokenStore::remove_for_package(const std::string& package_id) {
  return db_.transaction([&]() -> Result<int> {
    auto q = db_.prepare("DELETE FROM download_tokens WHERE package_id = ? AND spent = 0");
    q->bind(1, package_id);
    return q->exec();
  });
}

Result<int> TokenStore::prune_expired(TimeMs before) {
  return db_.transaction([&]() -> Result<int> {
    auto q = db_.prepare("DELETE FROM download_tokens WHERE expires_at <= ?");
    q->bind(1, before);
    return q->exec();
  });
}

}  // namespace dispatch::storage
