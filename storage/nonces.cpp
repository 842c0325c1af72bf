#include "storage/nonces.h"

namespace dispatch::storage {

using core::Result;
using core::TimeMs;

Result<bool> NonceStore::insert_if_new(const std::string& nonce_key, TimeMs t) {
  return db_.statement([&]() -> Result<bool> {
    auto q = db_.prepare("INSERT INTO nonces(nonce_key, t) VALUES(?, ?) ON CONFLICT DO NOTHING");
    q->bind(1, nonce_key);
    q->bind(2, t);
    return q->exec() == 1;
  });
}

Result<int> NonceStore::prune(TimeMs older_than) {
  return db_.transaction([&]() -> Result<int> {
    auto q = db_.prepare("DELETE FROM nonces WHERE t < ?");
    q->bind(1, older_than);
    return q->exec();
  });
}

Result<std::int64_t> NonceStore::count() {
  return db_.read([&]() -> Result<std::int64_t> {
    auto q = db_.prepare("SELECT COUNT(*) FROM nonces");
    q->executeStep();
    return q->getColumn(0).getInt64();
  });
}

}  // namespace dispatch::storage
