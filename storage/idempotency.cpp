#include "storage/idempotency.h"

namespace dispatch::storage {

// Stored in the meta table under "request:<scope>:<request_id>" as "<fingerprint>\n<answer>": a fingerprint
// is 64 hex characters and never holds a newline.
namespace {
std::string key_of(const std::string& scope, const std::string& request_id) {
  return "request:" + scope + ":" + request_id;
}
}  // namespace

core::Result<std::optional<IdempotentAnswer>> IdempotencyStore::find(const std::string& scope,
                                                                     const std::string& request_id) {
  try {
    auto q = db_.prepare("SELECT value FROM meta WHERE key = ?");
    q->bind(1, key_of(scope, request_id));
    if (!q->executeStep()) return std::optional<IdempotentAnswer>{};
    std::string v = q->getColumn(0).getString();
    auto nl = v.find('\n');
    if (nl == std::string::npos)
      return core::make_error(core::ErrorCode::internal, "corrupt idempotency record");
    return std::optional<IdempotentAnswer>{IdempotentAnswer{v.substr(0, nl), v.substr(nl + 1)}};
  } catch (const std::exception& e) {
    return error_from_exception(e);
  }
}

core::Status IdempotencyStore::put(const std::string& scope, const std::string& request_id,
                                   const std::string& fingerprint, const std::string& answer,
                                   core::TimeMs now) {
  try {
    // created_at: the retention of idempotency records (storage/retention.h).
    auto q = db_.prepare("INSERT INTO meta(key, value, created_at) VALUES(?, ?, ?)");
    q->bind(1, key_of(scope, request_id));
    q->bind(2, fingerprint + "\n" + answer);
    q->bind(3, now);
    q->exec();
    return {};
  } catch (const std::exception& e) {
    return error_from_exception(e);
  }
}

}  // namespace dispatch::storage
