#include "storage/meta.h"

namespace dispatch::storage {

using core::Result;
using core::Status;

Result<std::optional<std::string>> MetaStore::get(const std::string& key) {
  return db_.read([&]() -> Result<std::optional<std::string>> {
    auto q = db_.prepare("SELECT value FROM meta WHERE key = ?");
    q->bind(1, key);
    if (!q->executeStep()) return std::optional<std::string>{};
    return std::optional<std::string>{q->getColumn(0).getString()};
  });
}

Status MetaStore::set(const std::string& key, const std::string& value) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(
        "INSERT INTO meta(key, value) VALUES(?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    q->bind(1, key);
    q->bind(2, value);
    q->exec();
    return {};
  });
}

}  // namespace dispatch::storage
