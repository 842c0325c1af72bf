#include "storage/instance_starts.h"

namespace dispatch::storage {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using core::TimeMs;

Status InstanceStartStore::record(const std::string& instance_id, TimeMs started_at) {
  if (instance_id.empty()) return make_error(ErrorCode::bad_request, "instance id must not be empty");
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(
        "INSERT INTO instance_starts(instance_id, started_at) VALUES(?, ?) "
        "ON CONFLICT(instance_id) DO UPDATE SET started_at = excluded.started_at");
    q->bind(1, instance_id);
    q->bind(2, started_at);
    q->exec();
    auto prune = db_.prepare("DELETE FROM instance_starts WHERE started_at < ?");
    prune->bind(1, started_at - k_instance_start_retention_ms);
    prune->exec();
    return {};
  });
}

Result<std::optional<TimeMs>> InstanceStartStore::newest() {
  return db_.read([&]() -> Result<std::optional<TimeMs>> {
    auto q = db_.prepare("SELECT MAX(started_at) FROM instance_starts");
    if (!q->executeStep() || q->getColumn(0).isNull()) return std::optional<TimeMs>{};
    return std::optional<TimeMs>{q->getColumn(0).getInt64()};
  });
}

Result<std::optional<TimeMs>> InstanceStartStore::get(const std::string& instance_id) {
  return db_.read([&]() -> Result<std::optional<TimeMs>> {
    auto q = db_.prepare("SELECT started_at FROM instance_starts WHERE instance_id = ?");
    q->bind(1, instance_id);
    if (!q->executeStep()) return std::optional<TimeMs>{};
    return std::optional<TimeMs>{q->getColumn(0).getInt64()};
  });
}

}  // namespace dispatch::storage
