#include "storage/rate_windows.h"

namespace dispatch::storage {

using core::Result;
using core::Status;
using core::TimeMs;

Status RateWindowStore::record_event(const std::string& key, TimeMs t) {
  return db_.transaction([&]() -> Status {
    SQLite::Statement q(db_.db(), "INSERT INTO rate_events(key, t) VALUES(?, ?)");
    q.bind(1, key);
    q.bind(2, t);
    q.exec();
    SQLite::Statement trim(
        db_.db(),
        "DELETE FROM rate_events WHERE key = ? AND rowid NOT IN "
        "(SELECT rowid FROM rate_events WHERE key = ? ORDER BY t DESC, rowid DESC LIMIT ?)");
    trim.bind(1, key);
    trim.bind(2, key);
    trim.bind(3, max_per_key_);
    trim.exec();
    return {};
  });
}

Result<std::vector<TimeMs>> RateWindowStore::events(const std::string& key, TimeMs since) {
  return db_.read([&]() -> Result<std::vector<TimeMs>> {
    SQLite::Statement q(db_.db(), "SELECT t FROM rate_events WHERE key = ? AND t >= ? ORDER BY t");
    q.bind(1, key);
    q.bind(2, since);
    std::vector<TimeMs> times;
    while (q.executeStep()) times.push_back(q.getColumn(0).getInt64());
    return times;
  });
}

Result<int> RateWindowStore::prune(TimeMs older_than) {
  return db_.transaction([&]() -> Result<int> {
    SQLite::Statement q(db_.db(), "DELETE FROM rate_events WHERE t < ?");
    q.bind(1, older_than);
    return q.exec();
  });
}

}  // namespace dispatch::storage
